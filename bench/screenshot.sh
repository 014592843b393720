#!/bin/sh
# A picture of the status page while two workers run speech jobs: starts a
# daemon, keeps a load of jobs flowing, and has headless Chromium (Debian's
# chromium package) render http://control/ to a PNG.
#   bench/screenshot.sh [out.png]     (default: build/status-page.png)
# Needs a RabbitMQ on 127.0.0.1:5672 (scripts/rabbitmq-local.sh start).
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-build/status-page.png}
command -v chromium >/dev/null || { echo "screenshot: apt-get install chromium" >&2; exit 1; }
make -s all bench-tools
scripts/rabbitmq-local.sh start >/dev/null
. bench/lib.sh
Q=bench.screenshot.$$
bench_start 2 builtin:speech 2 "$Q" info
TEXT=$(printf 'Content becomes audio at scale, and nothing is lost. %.0s' $(seq 40))
build/bench/loadgen "$URL" "$Q" 400 8 \
    "{\"text\":\"$TEXT\",\"format\":\"ogg\"}" >/dev/null &
LOAD=$!
sleep 2
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$TMP/chrome" --hide-scrollbars --window-size=1100,900 \
    --screenshot="$OUT" "http://127.0.0.1:$PORT/" 2>/dev/null
wait $LOAD || true
echo "screenshot: $OUT"
