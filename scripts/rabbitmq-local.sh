#!/bin/sh
# Start or stop a local RabbitMQ on 127.0.0.1:5672 from Debian's rabbitmq-server
# package, for the quick start and the tests.
#   start   start one unless something already answers on the port; wait until
#           it accepts AMQP connections (exit 1 after 90 s)
#   stop    stop the node this script started (nothing if it found one running)
#   status  exit 0 if the port answers
set -eu

PORT=${C2A_RABBITMQ_PORT:-5672}
MARK=${TMPDIR:-/tmp}/c2a-rabbitmq.started

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}
# /dev/tcp needs bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"

case "${1:-}" in
start)
    if port_open; then
        echo "rabbitmq: already answering on 127.0.0.1:$PORT"
        exit 0
    fi
    command -v rabbitmq-server >/dev/null || { echo "rabbitmq: rabbitmq-server is not installed" >&2; exit 1; }
    echo "rabbitmq: starting a local node"
    rabbitmq-server -detached >/dev/null 2>&1 || true
    i=0
    until port_open; do
        i=$((i + 1))
        if [ $i -gt 180 ]; then
            echo "rabbitmq: did not come up within 90 s" >&2
            exit 1
        fi
        sleep 0.5
    done
    rabbitmqctl await_startup >/dev/null 2>&1 || true
    touch "$MARK"
    echo "rabbitmq: ready on 127.0.0.1:$PORT"
    ;;
stop)
    if [ ! -e "$MARK" ]; then
        echo "rabbitmq: not started by this script; leaving it alone"
        exit 0
    fi
    rabbitmqctl stop >/dev/null 2>&1 || true
    i=0
    while port_open && [ $i -lt 60 ]; do
        i=$((i + 1))
        sleep 0.5
    done
    epmd -kill >/dev/null 2>&1 || true
    rm -f "$MARK"
    echo "rabbitmq: stopped"
    ;;
status)
    port_open
    ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
