#!/bin/sh
# Build the Debian package from this tree, check it with lintian, install it
# on this machine, run one job through the installed daemon (started by its
# init script) against the local RabbitMQ, stop it, purge the package, and
# check that nothing is left. CI runs it; it needs root and a RabbitMQ on
# 127.0.0.1:5672 (guest/guest), and refuses to run where c2a-worker is
# already installed. Cleans up after itself, also on failure.
set -eu
cd "$(dirname "$0")/.."
SECONDS_START=$(date +%s)
say() { echo "deb-check: $*"; }
die() { say "FAILED: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (dpkg -i)"
if dpkg-query -W -f='${Status}' c2a-worker 2>/dev/null | grep -q "ok installed"; then
    die "c2a-worker is installed here already; not touching it"
fi
[ ! -e /etc/c2a-worker.conf ] || die "/etc/c2a-worker.conf exists; not touching it"
need=""
for p in debhelper lintian fakeroot dpkg-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
    say "installing:$need"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

WORK=$(mktemp -d /tmp/c2a-deb.XXXXXX)
installed=0
cleanup() {
    rc=$?
    if [ "$installed" = 1 ]; then
        /etc/init.d/c2a-worker stop >/dev/null 2>&1 || true
        dpkg -P c2a-worker >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT INT TERM

say "building in $WORK"
mkdir "$WORK/c2a-worker"
if [ -d .git ]; then
    git ls-files -co --exclude-standard -z | tar -cf - --null -T - | tar -xf - -C "$WORK/c2a-worker"
else
    tar -cf - --exclude=./build --exclude=./build-san --exclude=./build-clang \
        --exclude=./build-fuzz . | tar -xf - -C "$WORK/c2a-worker"
fi
(cd "$WORK/c2a-worker" &&
    DEB_BUILD_OPTIONS="nocheck parallel=2 noddebs" dpkg-buildpackage -us -uc -b \
        >"$WORK/build.log" 2>&1) || { tail -30 "$WORK/build.log"; die "dpkg-buildpackage"; }
deb=$(ls "$WORK"/c2a-worker_*_*.deb)
say "built $(basename "$deb")"

lintian --fail-on error --suppress-tags initial-upload-closes-no-bugs "$deb" ||
    die "lintian reports errors"
say "lintian: no errors"

installed=1
dpkg -i "$deb" >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; die "dpkg -i"; }
getent passwd c2a-worker >/dev/null || die "no c2a-worker user"
[ "$(stat -c '%U:%G %a' /etc/c2a-worker.conf)" = "root:c2a-worker 640" ] ||
    die "/etc/c2a-worker.conf is $(stat -c '%U:%G %a' /etc/c2a-worker.conf)"
[ -x /etc/init.d/c2a-worker ] && [ -f /lib/systemd/system/c2a-worker.service ] &&
    [ -f /lib/systemd/system/c2a-worker@.service ] && [ -f /etc/logrotate.d/c2a-worker ] &&
    [ -f /etc/default/c2a-worker ] || die "a file of the package is missing"
/usr/sbin/c2a-worker -t >/dev/null || die "the packaged configuration fails -t"

/etc/init.d/c2a-worker start || die "the init script did not start it"
i=0
until c2actl status >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -le 60 ] || { c2actl status || true; die "not healthy after 30 s"; }
    sleep 0.5
done
path=$(c2actl submit --text "Installed from the package." --format ogg --wait --timeout 60) ||
    die "the job failed"
[ -s "$path" ] || die "no audio at $path"
[ "$(stat -c %U "$path")" = c2a-worker ] || die "$path is not owned by c2a-worker"
say "one job: $path"
/etc/init.d/c2a-worker stop || die "the init script did not stop it"

dpkg -P c2a-worker >"$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log"; die "dpkg -P"; }
installed=0
for f in /etc/c2a-worker.conf /etc/default/c2a-worker /etc/init.d/c2a-worker \
    /etc/logrotate.d/c2a-worker /usr/sbin/c2a-worker /usr/bin/c2actl /usr/lib/c2a-worker \
    /lib/systemd/system/c2a-worker.service /var/lib/c2a-worker /var/log/c2a-worker \
    /run/c2a-worker.pid; do
    [ ! -e "$f" ] || die "$f is left after the purge"
done
! getent passwd c2a-worker >/dev/null || die "the c2a-worker user is left"
! dpkg-statoverride --list | grep -q c2a-worker || die "a stat override is left"
! pgrep -x c2a-worker >/dev/null || die "a c2a-worker process is left"
say "purged, nothing left; $(($(date +%s) - SECONDS_START)) s"
