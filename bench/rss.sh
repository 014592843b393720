#!/bin/sh
# Memory of a running pool: the master's and each idle worker's RSS (what ps and
# the targets count) and PSS (RSS with shared pages divided among the processes
# that map them), and each worker's engine child. Targets: master under 4 MB, a
# worker and its engine child together under 14 MB.
#   bench/rss.sh [path/to/c2a-worker] [workers]
set -eu
cd "$(dirname "$0")/.."
BIN=${1:-build/c2a-worker}
N=${2:-2}
[ -x "$BIN" ] || make -s
TMP=$(mktemp -d)
PORT=$((20000 + $$ % 20000))
trap 'kill -TERM $(cat "$TMP/pid" 2>/dev/null) 2>/dev/null; sleep 0.5; rm -rf "$TMP"' EXIT
cat > "$TMP/c.conf" <<CONF
[master]
control = 127.0.0.1:$PORT
pidfile = $TMP/pid
log_file = $TMP/log
[workers]
count = $N
[output]
dir = $TMP/audio
CONF
"$BIN" -D -c "$TMP/c.conf"
i=0
until [ "$(curl -fsS "http://127.0.0.1:$PORT/status" 2>/dev/null | grep -o '"state":"idle"' | wc -l)" -ge "$N" ]; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "workers did not come up" >&2; exit 1; }
    sleep 0.1
done
# Touch the control path once so the master's numbers include serving a request.
curl -fsS "http://127.0.0.1:$PORT/status?full" >/dev/null
sleep 1.2

mem() { # pid -> "rss_kb pss_kb"
    rss=$(awk '/^VmRSS:/{print $2}' "/proc/$1/status")
    pss=$(awk '/^Pss:/{print $2}' "/proc/$1/smaps_rollup")
    echo "$rss $pss"
}
MASTER=$(cat "$TMP/pid")
printf '%-8s %8s %10s %10s\n' role pid rss_kb pss_kb
set -- $(mem "$MASTER"); printf '%-8s %8s %10s %10s\n' master "$MASTER" "$1" "$2"
for w in $(cat /proc/"$MASTER"/task/*/children); do
    set -- $(mem "$w"); wr=$1; wp=$2
    printf '%-8s %8s %10s %10s\n' worker "$w" "$1" "$2"
    for e in $(cat /proc/"$w"/task/*/children); do
        set -- $(mem "$e")
        printf '%-8s %8s %10s %10s\n' " engine" "$e" "$1" "$2"
        printf '%-8s %8s %10s %10s\n' " sum" "" "$((wr + $1))" "$((wp + $2))"
    done
done
echo "binary: $BIN ($(stat -c %s "$BIN") bytes); libevent $(pkg-config --modversion libevent), jansson $(pkg-config --modversion jansson)"
