#!/bin/sh
# The main job, end to end, on a new Debian machine: install the dependencies,
# build, start a local RabbitMQ if none answers, start c2a-worker in the
# background with a configuration under ./run/, submit a job, wait for its
# result, and print where the audio is.
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

[broker]
queues = c2a.jobs

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

build/c2actl -c "$CONF" status
echo
TEXT=${C2A_TEXT:-"Hello. This is c2a worker, turning content into audio."}
echo "quickstart: submitting a job: $TEXT"
AUDIO=$(build/c2actl -c "$CONF" submit --text "$TEXT" --format ogg --wait --timeout 60)
echo
echo "audio:   $AUDIO"
echo "status:  curl http://$CONTROL/status"
echo "log:     $RUN/c2a-worker.log"
echo "submit:  build/c2actl -c $CONF submit --text 'Hi' --format mp3 --wait"
echo "stop:    kill -TERM \$(cat $PIDFILE)"
