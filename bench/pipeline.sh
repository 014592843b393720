#!/bin/sh
# The pipeline in one run on this machine, output on the disk as users run it
# (a directory under /var/tmp; --tmpfs puts it on /dev/shm instead):
#   (a) the limit: espeak-ng + WAV encoded into memory, no file, in a loop, one
#       process per worker, no broker (measured before and after (b); the
#       ratios are against the mean)
#   (b) c2a-worker, app = builtin:speech, the same text through RabbitMQ with
#       results, [output] fsync = yes (the default) and fsync = no
#   (c) c2a-worker, app = builtin:noop, through RabbitMQ with results
# for a ~200-character and a ~2,000-character English text. Prints jobs/s,
# p50/p99 latency, peak RSS per worker (with its engine child) and each (b)/(a).
#   bench/pipeline.sh [--tmpfs] [seconds_for_a] [jobs_for_b] [jobs_for_c]
# (the ~2,000-character case of (b) runs a fifth of jobs_for_b)
# Needs a RabbitMQ on 127.0.0.1:5672 (scripts/rabbitmq-local.sh start).
set -eu
cd "$(dirname "$0")/.."
BENCH_TMPFS=0
if [ "${1:-}" = --tmpfs ]; then
    BENCH_TMPFS=1
    shift
fi
SECS=${1:-10}
NB=${2:-3000}
NC=${3:-200000}
WORKERS=2
make -s all bench-tools
scripts/rabbitmq-local.sh start >/dev/null
. bench/lib.sh

SHORT="The quick brown fox jumps over the lazy dog. Content becomes audio at scale: a master process forks workers, each runs one event loop, and nothing is lost."
LONG=$(i=0; while [ $i -lt 13 ]; do printf '%s ' "$SHORT"; i=$((i + 1)); done)

peak_rss() { # max over workers of VmHWM of the worker plus its engine child, kB
    m=0
    for w in $(cat /proc/"$(cat "$TMP/pid")"/task/*/children); do
        h=$(awk '/^VmHWM:/{print $2}' "/proc/$w/status")
        for e in $(cat /proc/"$w"/task/*/children); do
            h=$((h + $(awk '/^VmHWM:/{print $2}' "/proc/$e/status")))
        done
        [ "$h" -gt "$m" ] && m=$h
    done
    echo "$m"
}

row() { # label, loadgen or inproc output, rss
    printf '%-40s %8s %8s %8s %8s\n' "$1" "$(field "$2" jobs/s)" "$(field "$2" p50_ms)" \
        "$(field "$2" p99_ms)" "$3"
}

where=$(df -T "$AUDIO" | awk 'NR==2{print $2}')
echo "c2a-worker pipeline bench: $(nproc) cores, $WORKERS workers, output on $where ($AUDIO), $(date -u +%Y-%m-%d)"
printf '%-40s %8s %8s %8s %8s\n' case jobs/s p50_ms p99_ms rss_kb
ratios=
for size in short long; do
    if [ $size = short ]; then T=$SHORT n=$NB; else T=$LONG n=$((NB / 5)); fi
    printf '%s' "$T" > "$TMP/text"
    chars=$(wc -c < "$TMP/text")
    a=$(build/bench/inproc $WORKERS "$SECS" "$TMP/text" -)
    row "(a) limit: in memory, $chars chars" "$a" -
    limit=$(field "$a" jobs/s)
    for fsync in yes no; do
        q=bench.speech.$$.$size.$fsync
        bench_start $WORKERS builtin:speech 4 "$q" warn $fsync
        job=$(printf '{"text":"%s","format":"wav"}' "$T")
        b=$(build/bench/loadgen "$URL" "$q" "$n" 16 "$job")
        rss=$(peak_rss)
        bench_stop
        row "(b) speech, fsync $fsync, $chars chars" "$b" "$rss"
        ratios="$ratios $(field "$b" jobs/s)"
    done
    # The machine's speed drifts over minutes (a VM): the limit is measured
    # again after (b) and each ratio is taken against the mean of the two.
    a2=$(build/bench/inproc $WORKERS "$SECS" "$TMP/text" -)
    row "(a) limit again, $chars chars" "$a2" -
    echo "$ratios" | awk -v a1="$limit" -v a2="$(field "$a2" jobs/s)" \
        '{printf "    of the limit (mean %.1f jobs/s): fsync yes %.2f, fsync no %.2f\n",
          (a1 + a2) / 2, $1 / ((a1 + a2) / 2), $2 / ((a1 + a2) / 2)}'
    ratios=
done
q=bench.noop.$$
bench_start $WORKERS builtin:noop 200 "$q"
c=$(build/bench/loadgen "$URL" "$q" "$NC" 4000 '{"text":"x"}')
rss=$(peak_rss)
bench_stop
row "(c) noop, prefetch 200" "$c" "$rss"
