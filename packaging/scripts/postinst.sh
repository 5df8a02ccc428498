#!/bin/sh
# postinst of brine-master and brine-minion (dpkg names the package in
# DPKG_MAINTSCRIPT_PACKAGE, and the unit has the package's name).
#
# A new install is enabled but not started: the daemon first needs its
# configuration (the minion its master, master_finger or autosign_token;
# the master its state tree). An upgrade restarts a running daemon so the
# new binary is in use; an admin's enable/disable choice is left alone.
# Without a running systemd (a container, a chroot, an image build) nothing
# is done.
set -e

unit="${DPKG_MAINTSCRIPT_PACKAGE:?run by dpkg}.service"

# BRINE_SYSTEMD_DIR only exists for the package tests, which point it at a
# directory of their own and put a recording systemctl on PATH.
systemd_running() { [ -d "${BRINE_SYSTEMD_DIR:-/run/systemd/system}" ]; }

case "$1" in
configure)
	if systemd_running; then
		# Failures are reported by systemctl but do not fail the install,
		# as debhelper's scripts do: the files are in place either way.
		systemctl daemon-reload || true
		if [ -z "$2" ]; then
			systemctl enable "$unit" || true
		else
			systemctl try-restart "$unit" || true
		fi
	fi
	;;
abort-upgrade | abort-remove | abort-deconfigure) ;;
*)
	echo "postinst called with unknown argument '$1'" >&2
	exit 1
	;;
esac
exit 0
