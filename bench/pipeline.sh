#!/bin/sh
# The pipeline in one run on this machine:
#   (a) the in-process limit: espeak-ng + WAV encoding in a loop, one process per worker
#   (b) c2a-worker, app = builtin:speech, the same text through RabbitMQ with results
#   (c) c2a-worker, app = builtin:noop, through RabbitMQ with results
# for a ~200-character and a ~2,000-character English text. Prints jobs/s,
# p50/p99 latency, peak RSS per worker (with its engine child) and the ratio (b)/(a).
#   bench/pipeline.sh [seconds_for_a] [jobs_for_b] [jobs_for_c]
# Needs a RabbitMQ on 127.0.0.1:5672 (scripts/rabbitmq-local.sh start).
set -eu
cd "$(dirname "$0")/.."
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

echo "c2a-worker pipeline bench: $(nproc) cores, $WORKERS workers, $(date -u +%Y-%m-%d)"
printf '%-34s %10s %9s %9s %10s\n' case jobs/s p50_ms p99_ms rss_kb
for size in short long; do
    if [ $size = short ]; then T=$SHORT; else T=$LONG; fi
    printf '%s' "$T" > "$TMP/text"
    chars=$(wc -c < "$TMP/text")
    a=$(build/bench/inproc $WORKERS "$SECS" "$TMP/text" "$AUDIO")
    printf '%-34s %10s %9s %9s %10s\n' "(a) in-process, $chars chars" "$(field "$a" jobs/s)" \
        "$(field "$a" p50_ms)" "$(field "$a" p99_ms)" -
    q=bench.speech.$$.$size
    bench_start $WORKERS builtin:speech 4 "$q"
    job=$(printf '{"text":"%s","format":"wav"}' "$T")
    b=$(build/bench/loadgen "$URL" "$q" "$NB" 16 "$job")
    rss=$(peak_rss)
    bench_stop
    printf '%-34s %10s %9s %9s %10s\n' "(b) c2a-worker speech, $chars chars" "$(field "$b" jobs/s)" \
        "$(field "$b" p50_ms)" "$(field "$b" p99_ms)" "$rss"
    awk -v a="$(field "$a" jobs/s)" -v b="$(field "$b" jobs/s)" \
        'BEGIN{printf "    ratio (b)/(a) = %.1f%%\n", 100*b/a}'
done
q=bench.noop.$$
bench_start $WORKERS builtin:noop 200 "$q"
c=$(build/bench/loadgen "$URL" "$q" "$NC" 4000 '{"text":"x"}')
rss=$(peak_rss)
bench_stop
printf '%-34s %10s %9s %9s %10s\n' "(c) c2a-worker noop, prefetch 200" "$(field "$c" jobs/s)" \
    "$(field "$c" p50_ms)" "$(field "$c" p99_ms)" "$rss"
