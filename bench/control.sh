#!/bin/sh
# The control socket under load while 2 workers run speech jobs.
#   1. baseline: the workers' speech throughput with nobody asking the master
#   2. the same jobs while wrk hammers GET /status, then GET /metrics
#      (wrk -t1 -c8, keep-alive): requests/s, p50/p99 latency, the master's CPU
#      and the workers' throughput beside the baseline
#   3. the same jobs while wrk asks about 1,000 times a second (each connection
#      pausing 8 ms between requests), and while one client asks /metrics every
#      second (a Prometheus scrape interval is 15 s; this is fifteen times that)
# On a 2-core machine the two workers use both cores, so in (2) wrk and the
# master take CPU the workers would have had: the master's CPU seconds say how
# much of that is the master and wrk_cpu how much is the load generator.
#   bench/control.sh [seconds]
# Needs wrk (apt-get install wrk) and RabbitMQ on 127.0.0.1:5672.
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-15}
WORKERS=2
command -v wrk >/dev/null || { echo "bench/control.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
make -s all bench-tools
scripts/rabbitmq-local.sh start >/dev/null
. bench/lib.sh
Q=bench.control.$$
bench_start $WORKERS builtin:speech 4 "$Q"
MASTER=$(cat "$TMP/pid")
JOB='{"text":"The quick brown fox jumps over the lazy dog. Content becomes audio at scale: a master process forks workers, each runs one event loop, and nothing is lost.","format":"wav"}'
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# Size the runs from a short warm-up so that each lasts about SECS seconds.
w=$(build/bench/loadgen "$URL" "$Q" 200 16 "$JOB")
N=$(awk -v r="$(field "$w" jobs/s)" -v s="$SECS" 'BEGIN{printf "%d", r * s}')

echo "c2a-worker control socket bench: $(nproc) cores, $WORKERS speech workers, $N jobs per run, $(date -u +%Y-%m-%d)"
printf '%-30s %9s %9s %9s %11s %9s %13s\n' case req/s p50 p99 master_cpu wrk_cpu worker_jobs/s
# Each of wrk's 8 connections waits 8 ms before each request: about 1,000 req/s.
echo 'function delay() return 8 end' > "$TMP/paced.lua"
run() { # label path|"" mode
    c0=$(cpu_ticks "$MASTER")
    if [ "$3" = wrk ] || [ "$3" = paced ]; then
        script=""
        [ "$3" = paced ] && script="-s $TMP/paced.lua"
        # shellcheck disable=SC2086
        /usr/bin/time -f "%U %S" -o "$TMP/wrktime" \
            wrk -t1 -c8 -d"${SECS}s" --latency $script "http://127.0.0.1:$PORT$2" > "$TMP/wrk" 2>&1 &
        wp=$!
    elif [ "$3" = scrape ]; then
        ( while :; do curl -fsS -o /dev/null "http://127.0.0.1:$PORT$2"; sleep 1; done ) &
        wp=$!
    fi
    r=$(build/bench/loadgen "$URL" "$Q" "$N" 16 "$JOB")
    c1=$(cpu_ticks "$MASTER")
    rps=- p50=- p99=- wcpu=-
    if [ "$3" = wrk ] || [ "$3" = paced ]; then
        wait $wp
        rps=$(awk '/^Requests\/sec/{print $2}' "$TMP/wrk")
        p50=$(awk '$1=="50%"{print $2}' "$TMP/wrk")
        p99=$(awk '$1=="99%"{print $2}' "$TMP/wrk")
        wcpu=$(awk '{printf "%.1fs", $1 + $2}' "$TMP/wrktime")
        grep -q "Non-2xx\|Socket errors" "$TMP/wrk" && grep "Non-2xx\|Socket errors" "$TMP/wrk" >&2
    elif [ "$3" = scrape ]; then
        kill $wp
    fi
    printf '%-30s %9s %9s %9s %10.1fs %9s %13s\n' "$1" "$rps" "$p50" "$p99" \
        "$(awk -v t=$((c1 - c0)) -v hz="$HZ" 'BEGIN{print t / hz}')" "$wcpu" "$(field "$r" jobs/s)"
}
run "speech jobs, no requests" "" none
run "wrk GET /status" /status wrk
run "wrk GET /metrics" /metrics wrk
run "wrk GET / (HTML page)" / wrk
run "~1,000 GET /status a second" /status paced
run "~1,000 GET /metrics a second" /metrics paced
run "GET /metrics every second" /metrics scrape
echo "master RSS after the runs: $(awk '/^VmRSS/{print $2}' /proc/"$MASTER"/status) kB"
