# Sourced by the bench scripts, from the top of the tree: a throwaway daemon.
# Sets TMP (config, pidfile, log), AUDIO (the output dir: on the disk under
# /var/tmp or BENCH_DIR, as users run it, or on tmpfs when BENCH_TMPFS=1), PORT
# and URL; on exit the daemon is stopped and both directories removed.
TMP=$(mktemp -d)
if [ "${BENCH_TMPFS:-0}" = 1 ]; then
    AUDIO=$(mktemp -d /dev/shm/c2a-bench.XXXXXX)
else
    AUDIO=$(mktemp -d "${BENCH_DIR:-/var/tmp}"/c2a-bench.XXXXXX)
fi
PORT=$((20000 + $$ % 20000))
URL=amqp://guest:guest@127.0.0.1:5672/%2f
bench_cleanup() {
    for f in "$TMP"/pid*; do
        [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null && sleep 1
    done
    rm -rf "$TMP" "$AUDIO"
}
trap bench_cleanup EXIT

# bench_start WORKERS APP PREFETCH QUEUE [LOG_LEVEL] [FSYNC]: start
# build/c2a-worker in the background and wait until every worker holds its
# broker connection. Each run writes to a directory of its own ($AUDIO/QUEUE):
# the load generator's job ids repeat from run to run, and a file renamed over
# another frees an inode, which ext4 without a journal then skips for a few
# minutes at every allocation (users' job ids do not repeat like that).
# BENCH_INST=N (default 0) runs the Nth of several daemons side by side: its
# pidfile is $TMP/pid (N = 0) or $TMP/pidN, its control port PORT + N.
# BENCH_PAGE_CACHE=keep|drop sets [output] page_cache (default drop, the daemon's).
bench_start() {
    _bi=${BENCH_INST:-0}
    cat > "$TMP/c$_bi.conf" <<CONF
[master]
control = 127.0.0.1:$((PORT + _bi))
pidfile = $(bench_pidfile)
log_file = $TMP/log
log_level = ${5:-warn}
[workers]
count = $1
app = $2
[broker]
prefetch = $3
queues = $4
[output]
dir = $AUDIO/$4
fsync = ${6:-yes}
page_cache = ${BENCH_PAGE_CACHE:-drop}
CONF
    build/c2a-worker -D -c "$TMP/c$_bi.conf"
    until [ "$(curl -fsS "http://127.0.0.1:$((PORT + _bi))/status" 2>/dev/null |
        grep -o '"broker_connected":true' | wc -l)" -ge "$1" ]; do
        sleep 0.1
    done
}

bench_stop() {
    kill -TERM "$(cat "$(bench_pidfile)")"
    while [ -e "$(bench_pidfile)" ]; do sleep 0.1; done
}

bench_pidfile() {
    if [ "${BENCH_INST:-0}" = 0 ]; then echo "$TMP/pid"; else echo "$TMP/pid$BENCH_INST"; fi
}

# field "k1 v1 k2 v2 ..." k: the value after k (the output of inproc and loadgen).
field() { echo "$1" | tr ' ' '\n' | awk -v k="$2" 'prev==k{print; exit} {prev=$0}'; }
