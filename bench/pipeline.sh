#!/bin/sh
# The pipeline on this machine, output on the disk as users run it (a
# directory under /var/tmp, or under DIR with --dir DIR; --tmpfs puts it on
# /dev/shm instead):
#   (a) the limit: espeak-ng + WAV encoded into memory, no file, in a loop, one
#       process per worker, no broker
#   (f) the same loop writing each file as the workers do (temporary file,
#       SHA-256 read back, fsync, its pages dropped unless --page-cache keep,
#       rename, directory fsync), in the synthesizing process, no broker: what
#       the file alone costs
#   (b) c2a-worker, app = builtin:speech, the same text through RabbitMQ with
#       results, [output] fsync = yes (the default) and fsync = no
#   (c) c2a-worker, app = builtin:noop, through RabbitMQ with results
# for a ~200-character and a ~2,000-character English text. The machine's
# speed drifts over minutes (a VM), so (a) and (b) run in ROUNDS interleaved
# rounds (a, b yes, b no, a, b yes, ...) and each ratio is taken within its
# round; the headline ratio is the median of the rounds'. Prints jobs/s over
# all rounds, p50 (median of the rounds') and p99 (worst round's) latency,
# peak RSS per worker (with its engine child), and where the CPU went: ms of
# CPU a job in the engine children, the worker processes (event loop and
# commit thread), the broker (beam.smp) and everything else (the load
# generator, kernel threads, interrupts), against the limit's ms a job.
#   bench/pipeline.sh [--tmpfs | --dir DIR] [--rounds R] [--page-cache keep|drop]
#                     [seconds_a] [jobs_b] [jobs_c]
# seconds_a: (a)'s time in each round; jobs_b: (b)'s jobs at ~200 characters
# over all rounds, for each fsync setting (the ~2,000-character case runs a
# fifth of that); jobs_c: (c)'s jobs.
# Needs a RabbitMQ on 127.0.0.1:5672 (scripts/rabbitmq-local.sh start).
# ext4 without a journal (this machine's root) checks free inodes against the
# time they were freed at every allocation and skips the recent ones: after
# many files were deleted in the same block group, creating one file here
# costs 0.3 to 0.6 ms of CPU (a loop of open+write of 46 KB in Python; 30 to 45
# us on a journaled ext4 on the same disk). --dir on a journaled file system
# measures without that cost.
# This VM hands freed memory back to its host (free page reporting): once the
# memory freed lately is used up, each page of new page cache costs a fault in
# the host (a 5.8 MB file written into new cache: 9 to 11 ms of CPU, into
# pages just freed: 1.1 to 1.4 ms). The daemons drop each flushed file's
# pages by default ([output] page_cache = drop), and (f) does as they do, so
# their files reuse the same pages; --page-cache keep runs (f) and (b) without
# that (at 2,028 characters, a tenth less on this VM).
# With the defaults the files kept until the end take about 12 GB.
set -eu
BENCH_TMPFS=0
ROUNDS=6
while [ $# -gt 0 ]; do
    case $1 in
    --tmpfs) BENCH_TMPFS=1 ;;
    --dir) BENCH_DIR=$(cd "$2" && pwd) ;; # the daemon's config is elsewhere
    --rounds) ROUNDS=$2 ;;
    --page-cache) BENCH_PAGE_CACHE=$2 ;;
    *) break ;;
    esac
    case $1 in --dir | --rounds | --page-cache) shift ;; esac
    shift
done
[ "$ROUNDS" -ge 1 ] || { echo "pipeline.sh: --rounds: at least 1" >&2; exit 2; }
case ${BENCH_PAGE_CACHE:=drop} in
keep) DROP= ;;
drop) DROP=drop ;;
*) echo "pipeline.sh: --page-cache: keep or drop" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
SECS=${1:-4}
NB=${2:-3000}
NC=${3:-200000}
WORKERS=2
make -s all bench-tools
scripts/rabbitmq-local.sh start >/dev/null
. bench/lib.sh

SHORT="The quick brown fox jumps over the lazy dog. Content becomes audio at scale: a master process forks workers, each runs one event loop, and nothing is lost."
LONG=$(i=0; while [ $i -lt 13 ]; do printf '%s ' "$SHORT"; i=$((i + 1)); done)

children() { # the child processes of pid $1
    cat /proc/"$1"/task/*/children 2>/dev/null || true
}

peak_rss() { # max over workers of VmHWM of the worker plus its engine child, kB
    m=0
    for w in $(children "$(cat "$(bench_pidfile)")"); do
        h=$(awk '/^VmHWM:/{print $2}' "/proc/$w/status")
        for e in $(children "$w"); do
            h=$((h + $(awk '/^VmHWM:/{print $2}' "/proc/$e/status")))
        done
        [ "$h" -gt "$m" ] && m=$h
    done
    echo "$m"
}

ticks() { # CPU clock ticks used so far by the processes given
    t=0
    for p in "$@"; do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}

busy() { # CPU clock ticks the whole machine has been busy (steal is not)
    awk '/^cpu /{print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat
}

# run_a TEXT_FILE LABEL [DIR]: one round of (a), or of (f) into DIR, appended to
# $TMP/results
run_a() {
    b0=$(busy)
    if [ -n "${3:-}" ]; then
        a=$(build/bench/inproc $WORKERS "$SECS" "$1" "$3" $DROP)
    else
        a=$(build/bench/inproc $WORKERS "$SECS" "$1" -)
    fi
    echo "$2 $(field "$a" jobs) $(field "$a" seconds) $(field "$a" p50_ms)" \
        "$(field "$a" p99_ms) 0 0 0 0 $(($(busy) - b0)) $(field "$a" jobs/s)" >> "$TMP/results"
}

# start_b INST SIZE FSYNC JOB_JSON: daemon number INST for (b), its engine
# children running (a warm-up loads their voices) and idle until run_b
start_b() {
    BENCH_INST=$1 bench_start $WORKERS builtin:speech 4 "bench.speech.$$.$2.$3" warn "$3"
    build/bench/loadgen "$URL" "bench.speech.$$.$2.$3" 32 16 "$4" warm > /dev/null
}

# run_b INST ROUND SIZE FSYNC JOBS JOB_JSON: one round of (b) on daemon INST
run_b() {
    w=$(children "$(BENCH_INST=$1 bench_pidfile | xargs cat)")
    e=$(for p in $w; do children "$p"; done)
    brk=$(pgrep -x beam.smp || true)
    e0=$(ticks $e) w0=$(ticks $w) r0=$(ticks $brk) b0=$(busy)
    b=$(build/bench/loadgen "$URL" "bench.speech.$$.$3.$4" "$5" 16 "$6" "r$2") || {
        echo "pipeline.sh: (b) failed: ${b:-no answer} (the log: $TMP/log)" >&2
        tail -3 "$TMP/log" >&2
        exit 1
    }
    e1=$(ticks $e) w1=$(ticks $w) r1=$(ticks $brk) b1=$(busy)
    echo "$4.$3.$2 $(field "$b" jobs) $(field "$b" seconds) $(field "$b" p50_ms)" \
        "$(field "$b" p99_ms) $(BENCH_INST=$1 peak_rss) $((e1 - e0)) $((w1 - w0))" \
        "$((r1 - r0)) $((b1 - b0)) $(field "$b" jobs/s)" >> "$TMP/results"
}

where=$(df -T "$AUDIO" | awk 'NR==2{print $2}')
echo "c2a-worker pipeline bench: $(nproc) cores, $WORKERS workers, output on $where ($AUDIO)," \
    "page_cache $BENCH_PAGE_CACHE, $ROUNDS rounds, $(date -u +%Y-%m-%d)"
printf '%-40s %8s %8s %8s %8s\n' case jobs/s p50_ms p99_ms rss_kb
: > "$TMP/results"
for size in short long; do
    if [ $size = short ]; then T=$SHORT n=$NB; else T=$LONG n=$((NB / 5)); fi
    n=$(((n + ROUNDS - 1) / ROUNDS))
    printf '%s' "$T" > "$TMP/text"
    chars=$(wc -c < "$TMP/text")
    job=$(printf '{"text":"%s","format":"wav"}' "$T")
    start_b 1 $size yes "$job"
    start_b 2 $size no "$job"
    r=1
    while [ $r -le "$ROUNDS" ]; do
        run_a "$TMP/text" "a.$size.$r"
        run_a "$TMP/text" "f.$size.$r" "$(mktemp -d "$AUDIO/f.XXXXXX")"
        run_b 1 $r $size yes "$n" "$job"
        run_b 2 $r $size no "$n" "$job"
        r=$((r + 1))
    done
    BENCH_INST=1 bench_stop
    BENCH_INST=2 bench_stop
    # Each case over its rounds; the ratios within each round, then their median.
    awk -v size=$size -v chars="$chars" -v hz="$(getconf CLK_TCK)" -v R="$ROUNDS" '
        function median(s,   v, k, i, j, t) {
            k = split(s, v, " ")
            for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++)
                if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
            return k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
        }
        {
            split($1, f, "."); if (f[2] != size) next
            c = f[1]; r = f[3]
            # (a) and (f): jobs/s is the sum of the processes own rates, not
            # jobs over the longest run: over the rounds, weighted by time
            jobs[c] += $2; secs[c] += $3; work[c] += $11 * $3; p50[c] = p50[c] " " $4
            if ($5 > p99[c]) p99[c] = $5
            if ($6 > rss[c]) rss[c] = $6
            eng[c] += $7; wrk[c] += $8; brk[c] += $9; tot[c] += $10
            rate[c, r] = $11
        }
        END {
            label["a"] = "(a) limit: in memory, " chars " chars"
            label["f"] = "(f) the loop with the file, " chars " chars"
            label["yes"] = "(b) speech, fsync yes, " chars " chars"
            label["no"] = "(b) speech, fsync no, " chars " chars"
            n = split("a f yes no", cs, " ")
            for (i = 1; i <= n; i++) {
                c = cs[i]
                printf "%-40s %8.1f %8.2f %8.2f %8s\n", label[c], work[c] / secs[c],
                    median(p50[c]), p99[c], i <= 2 ? "-" : rss[c]
            }
            for (i = 2; i <= n; i++) {
                c = cs[i]; s = ""
                for (r = 1; r <= R; r++) s = s " " sprintf("%.2f", rate[c, r] / rate["a", r])
                line = line sprintf("%s%s %.2f (rounds%s)", i > 2 ? ", " : "",
                                    i > 2 ? "fsync " c : "(f)", median(s), s)
            }
            print "    of the limit, median of the rounds: " line
            ms = 1000 / hz
            printf "    CPU ms a job: the limit %.2f; (f) %.2f, %.2f of it the limit\n",
                tot["a"] * ms / jobs["a"], tot["f"] * ms / jobs["f"],
                tot["a"] / jobs["a"] / (tot["f"] / jobs["f"])
            for (i = 3; i <= n; i++) {
                c = cs[i]; j = jobs[c]
                printf "      fsync %-3s: engine %.2f, worker %.2f, broker %.2f, other %.2f;" \
                       " %.2f in all, %.2f of it the limit\n", c, eng[c] * ms / j,
                       wrk[c] * ms / j, brk[c] * ms / j,
                       (tot[c] - eng[c] - wrk[c] - brk[c]) * ms / j, tot[c] * ms / j,
                       tot["a"] / jobs["a"] / (tot[c] / j)
            }
        }' "$TMP/results"
done
q=bench.noop.$$
bench_start $WORKERS builtin:noop 200 "$q"
c=$(build/bench/loadgen "$URL" "$q" "$NC" 4000 '{"text":"x"}')
rss=$(peak_rss)
bench_stop
printf '%-40s %8s %8s %8s %8s\n' "(c) noop, prefetch 200" "$(field "$c" jobs/s)" \
    "$(field "$c" p50_ms)" "$(field "$c" p99_ms)" "$rss"
