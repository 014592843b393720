#!/bin/sh
# Write a systemd unit of c2a-worker made from scripts/c2a-worker.service.in on
# stdout: the service (one instance, /etc/c2a-worker.conf) or the template
# (c2a-worker@NAME: /etc/c2a-worker/NAME.conf, its own runtime directory).
#   mkunit.sh c2a-worker.service|c2a-worker@.service SBINDIR SYSCONFDIR
set -eu
unit=$1 sbindir=$2 sysconfdir=$3
in=$(dirname "$0")/c2a-worker.service.in
case "$unit" in
c2a-worker.service)
    config=$sysconfdir/c2a-worker.conf rundir=c2a-worker suffix= ;;
c2a-worker@.service)
    config=$sysconfdir/c2a-worker/%i.conf rundir=c2a-worker-%i suffix=" (%i)" ;;
*)
    echo "mkunit.sh: unknown unit $unit" >&2
    exit 2 ;;
esac
sed -e "s|@UNIT_NOTE@|$unit, made from scripts/c2a-worker.service.in|" \
    -e "s|@SBINDIR@|$sbindir|g" -e "s|@CONFIG@|$config|g" \
    -e "s|@RUNDIR@|$rundir|g" -e "s|@DESC_SUFFIX@|$suffix|g" "$in"
