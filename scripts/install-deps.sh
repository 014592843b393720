#!/bin/sh
# Install every build, run and test dependency of c2a-worker from Debian's
# packages. Idempotent: does nothing when all are present. Runs apt-get as root,
# or through sudo.
set -eu

PKGS="build-essential pkg-config clang libclang-rt-dev
libevent-dev libjansson-dev librabbitmq-dev libsndfile1-dev libsamplerate0-dev
libssl-dev libebur128-dev libcurl4-openssl-dev libxml2-dev libespeak-ng-dev espeak-ng-data espeak-ng libinih-dev libcmocka-dev
rabbitmq-server python3-pytest python3-pika python3-requests python3-prometheus-client
mandoc valgrind curl procps iproute2 wrk time strace systemd prometheus chromium python3-pil ffmpeg"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: all dependencies are installed"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-deps: need root or sudo to install:$missing" >&2
    exit 1
fi

echo "install-deps: installing:$missing"
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
