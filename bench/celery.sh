#!/bin/sh
# The peer we compete with, measured the way bench/pipeline.sh measures us, to
# read side by side with its (b) and (c) rows: a Celery 5.2 prefork pool (-c 2,
# acks_late, worker_prefetch_multiplier 1, Debian's python3-celery) on the local
# RabbitMQ, each task running the espeak-ng command line
#   espeak-ng -v en-us -s 175 -w OUTFILE TEXT   (subprocess, no fsync)
# into a directory on the disk (under /var/tmp; --tmpfs puts it on /dev/shm) and
# returning {"path", "bytes"}, for the same two texts as pipeline.sh (~155 and
# ~2,000 characters), then a task that returns at once (no-op). The tasks are in
# bench/celery_tasks.py.
#   bench/celery.sh [--tmpfs] [jobs_short] [jobs_long] [jobs_noop]
# (defaults 2000, 300 and five times jobs_short). Prints, per case, jobs/s,
# p50/p99 latency (ms, from just before the publish to the arrival of the
# result, queue wait behind the 16 in flight included, as loadgen counts it),
# the peak RSS of the whole pool (master + pool processes, VmHWM added up, kB;
# the short-lived espeak-ng processes are not in it, their peak is printed
# once on top) and client%, the producer's own CPU time over the run's wall
# time, in percent of one core.
# Fairness: results come back through RabbitMQ with Celery's rpc:// backend
# (one reply queue per client, transient replies), as loadgen's replies do;
# the producer is Celery's own Python client (apply_async, then reading the
# reply queue as AsyncResult.get() does), keeping 16 tasks in flight like
# `loadgen ... 16`. Unlike the C loadgen it takes CPU from the same 2 cores:
# client% says how much (most of a core in the no-op case, where it may cap
# jobs/s). Celery's defaults are kept otherwise: task messages are persistent,
# and rpc:// declares its reply queue again (a round trip) before each
# publish. The worker runs --without-gossip --without-mingle
# --without-heartbeat (no chatter between Celery nodes, the usual advice with
# RabbitMQ). Each case starts a fresh worker, as pipeline.sh does; one no-op
# task warms the connections up before the clock starts.
# Needs a RabbitMQ on 127.0.0.1:5672 (scripts/rabbitmq-local.sh start) and
# installs python3-celery with apt-get if Debian's python3 lacks it.
set -eu
cd "$(dirname "$0")/.."
BENCH_TMPFS=0
if [ "${1:-}" = --tmpfs ]; then
    BENCH_TMPFS=1
    shift
fi
NS=${1:-2000}
NL=${2:-300}
NN=${3:-$((NS * 5))}
CONCURRENCY=2
INFLIGHT=16
PY=/usr/bin/python3 # Debian's: a python3 earlier on PATH lacks Debian's modules
if ! $PY -c 'import celery' 2>/dev/null; then
    [ "$(id -u)" = 0 ] || { echo "bench/celery.sh: needs python3-celery (apt-get install python3-celery)" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-celery >/dev/null
fi
command -v espeak-ng >/dev/null || { echo "bench/celery.sh: needs espeak-ng" >&2; exit 1; }
scripts/rabbitmq-local.sh start >/dev/null
. bench/lib.sh

export CELERY_BENCH_BROKER=amqp://guest:guest@127.0.0.1:5672//
export CELERY_BENCH_OUT="$AUDIO"
export CELERY_BENCH_READY="$TMP/ready"
export PYTHONPATH="$PWD/bench"
WORKER=
CELERY_BENCH_QUEUE=

# celery_stop: TERM the worker (a warm shutdown: running tasks finish), KILL
# its process group (setsid made the worker its leader) if it is not gone in
# 20 s, then delete the case's queue and exchanges.
alive() { grep -q '^State:[^Z]*$' "/proc/$1/status" 2>/dev/null; } # and not a zombie
celery_stop() {
    if [ -n "$WORKER" ]; then
        kill -TERM "$WORKER" 2>/dev/null || true
        i=0
        while alive "$WORKER" && [ $i -lt 200 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -KILL -- "-$WORKER" 2>/dev/null || true
        wait "$WORKER" 2>/dev/null || true
        WORKER=
    fi
    if [ -n "$CELERY_BENCH_QUEUE" ]; then
        $PY bench/celery_tasks.py delete || true
        CELERY_BENCH_QUEUE=
    fi
}
PRODUCER=
celery_cleanup() {
    trap - EXIT INT TERM HUP
    [ -z "$PRODUCER" ] || kill -TERM "$PRODUCER" 2>/dev/null || true
    celery_stop
    bench_cleanup
}
trap celery_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# celery_start QUEUE: a worker in its own session (Ctrl-C reaches the script,
# which stops it; setsid execs it, so $! is the worker) consuming QUEUE; wait
# until it says it is ready and its pool processes are there.
celery_start() {
    export CELERY_BENCH_QUEUE="$1"
    rm -f "$CELERY_BENCH_READY"
    setsid $PY -m celery -A celery_tasks worker -P prefork -c $CONCURRENCY -Q "$1" \
        -n "bench-$$@%h" --loglevel=WARNING --logfile="$TMP/celery.log" \
        --without-gossip --without-mingle --without-heartbeat </dev/null >>"$TMP/celery.log" 2>&1 &
    WORKER=$!
    i=0
    until [ -e "$CELERY_BENCH_READY" ] &&
        [ "$(cat /proc/"$WORKER"/task/*/children 2>/dev/null | wc -w)" -ge $CONCURRENCY ]; do
        i=$((i + 1))
        if [ $i -gt 600 ] || ! alive "$WORKER"; then
            echo "bench/celery.sh: the worker did not get ready:" >&2
            cat "$TMP/celery.log" >&2
            exit 1
        fi
        sleep 0.1
    done
}

vmhwm() { awk '/^VmHWM:/{print $2; f=1} END{if (!f) print 0}' "/proc/$1/status" 2>/dev/null || echo 0; }
pool_rss() { # master + pool processes, VmHWM added up, kB
    h=$(vmhwm "$WORKER")
    for c in $(cat /proc/"$WORKER"/task/*/children); do
        h=$((h + $(vmhwm "$c")))
    done
    echo "$h"
}

row() { # label, producer output, rss
    printf '%-40s %8s %8s %8s %8s %8s\n' "$1" "$(field "$2" jobs/s)" "$(field "$2" p50_ms)" \
        "$(field "$2" p99_ms)" "$3" "$(field "$2" client_cpu_pct)"
}

# run LABEL QUEUE KIND N [TEXT_FILE]: one case on a fresh worker
run() {
    celery_start "$2"
    # in the background: a trapped signal interrupts wait, not a foreground job
    $PY bench/celery_tasks.py produce "$3" "$4" $INFLIGHT ${5:+"$5"} >"$TMP/out" &
    PRODUCER=$!
    wait "$PRODUCER" || { echo "bench/celery.sh: $1: $(cat "$TMP/out")" >&2; exit 1; }
    PRODUCER=
    out=$(cat "$TMP/out")
    rss=$(pool_rss)
    celery_stop
    row "$1" "$out" "$rss"
}

# The texts exactly as bench/pipeline.sh defines them.
SHORT="The quick brown fox jumps over the lazy dog. Content becomes audio at scale: a master process forks workers, each runs one event loop, and nothing is lost."
LONG=$(i=0; while [ $i -lt 13 ]; do printf '%s ' "$SHORT"; i=$((i + 1)); done)
grep -qF "SHORT=\"$SHORT\"" bench/pipeline.sh ||
    echo "bench/celery.sh: warning: SHORT differs from bench/pipeline.sh's" >&2

espeak_kb=$($PY -c 'import resource, subprocess, sys
subprocess.run(["espeak-ng", "-v", "en-us", "-s", "175", "-w", sys.argv[1], sys.argv[2]], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$TMP/probe.wav" "$LONG")
rm -f "$TMP/probe.wav"

where=$(df -T "$AUDIO" | awk 'NR==2{print $2}')
celery_v=$($PY -c 'import celery; print(celery.__version__)')
echo "Celery $celery_v prefork bench: $(nproc) cores, -c $CONCURRENCY, acks_late, prefetch 1, rpc:// results, output on $where ($AUDIO), $(date -u +%Y-%m-%d)"
echo "(espeak-ng CLI peak RSS per task, not in rss_kb: $espeak_kb kB)"
printf '%-40s %8s %8s %8s %8s %8s\n' case jobs/s p50_ms p99_ms rss_kb client%
for size in short long; do
    if [ $size = short ]; then T=$SHORT n=$NS; else T=$LONG n=$NL; fi
    printf '%s' "$T" > "$TMP/text"
    chars=$(wc -c < "$TMP/text")
    run "celery speech, $chars chars" "bench.celery.$$.$size" speak "$n" "$TMP/text"
done
run "celery noop, prefetch 1" "bench.celery.$$.noop" noop "$NN"
