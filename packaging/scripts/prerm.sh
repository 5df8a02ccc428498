#!/bin/sh
# prerm of brine-master and brine-minion: stop the daemon when the package
# is removed. On upgrade it keeps running until postinst restarts it, so a
# minion upgrading itself finishes the job that upgrades it.
set -e

unit="${DPKG_MAINTSCRIPT_PACKAGE:?run by dpkg}.service"
systemd_running() { [ -d "${BRINE_SYSTEMD_DIR:-/run/systemd/system}" ]; }

case "$1" in
remove | deconfigure)
	if systemd_running; then
		systemctl stop "$unit" || true
	fi
	;;
esac
exit 0
