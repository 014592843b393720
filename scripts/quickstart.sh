#!/bin/sh
# The main job, end to end, on a new Debian machine: install the dependencies,
# build, start a local RabbitMQ if none answers, start c2a-worker in the
# background with a configuration under ./run/, and show what it is doing.
#
# Until the job pipeline lands this stops at a running, supervised pool and its
# status; then it will also submit a job and print where the audio is.
set -eu
cd "$(dirname "$0")/.."
TOP=$(pwd)
RUN="$TOP/run"
CONF="$RUN/c2a-worker.conf"
PIDFILE="$RUN/c2a-worker.pid"
CONTROL=${C2A_CONTROL:-127.0.0.1:8765}

scripts/install-deps.sh
make -s
scripts/rabbitmq-local.sh start

mkdir -p "$RUN/audio"
if [ ! -e "$CONF" ]; then
    cat > "$CONF" <<CONF
; written by scripts/quickstart.sh; see man/c2a-worker.conf.5
[master]
control = $CONTROL
pidfile = $PIDFILE
log_file = $RUN/c2a-worker.log
log_level = info

[workers]
count = 2

[output]
dir = $RUN/audio
CONF
fi

if [ -e "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "quickstart: c2a-worker already running (pid $(cat "$PIDFILE")); reloading it"
    kill -HUP "$(cat "$PIDFILE")"
else
    build/c2a-worker -t -c "$CONF" >/dev/null
    build/c2a-worker -D -c "$CONF"
    echo "quickstart: c2a-worker started (pid $(cat "$PIDFILE"))"
fi

i=0
until curl -fsS "http://$CONTROL/status" -o "$RUN/status.json" 2>/dev/null &&
    /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(not d["workers"] or any(w["state"]=="booting" for w in d["workers"]))' "$RUN/status.json"; do
    i=$((i + 1))
    [ $i -lt 100 ] || { echo "quickstart: no status from $CONTROL" >&2; exit 1; }
    sleep 0.1
done

/usr/bin/python3 - "$RUN/status.json" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
print(f"master pid {st['pid']}  state {st['state']}  version {st['version']}")
print(f"config {st['config_file']}")
print(f"{'PID':>8}  {'STATE':<9}{'JOBS OK':>8}{'FAILED':>8}{'RSS kB':>8}")
for w in st["workers"]:
    print(f"{w['pid']:>8}  {w['state']:<9}{w['jobs_ok']:>8}{w['jobs_failed']:>8}{w['rss_kb']:>8}")
PY
echo "status:  curl http://$CONTROL/status"
echo "log:     $RUN/c2a-worker.log"
echo "audio:   $RUN/audio/"
echo "stop:    kill -TERM \$(cat $PIDFILE)"
