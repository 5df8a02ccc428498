#!/bin/sh
# postrm of brine-master and brine-minion.
#
# remove: the unit file is gone; systemd is told so. The enable symlink is
# kept, so installing the package again restores the admin's choice.
# purge: also the enable symlink, the daemon's data (keys: the master's
# accepted minions, the minion's own key and pinned master; job cache; mine)
# and its log files, if a drop-in wrote any. dpkg itself deletes the
# conffile, and the directories shared by brine-master and brine-minion
# (/etc/brine, /var/lib/brine, /var/log/brine) once no package has them.
set -e

pkg="${DPKG_MAINTSCRIPT_PACKAGE:?run by dpkg}"
unit="$pkg.service"
role="${pkg#brine-}"
systemd_running() { [ -d "${BRINE_SYSTEMD_DIR:-/run/systemd/system}" ]; }

case "$1" in
purge)
	rm -f "$DPKG_ROOT/etc/systemd/system/multi-user.target.wants/$unit"
	rm -rf "$DPKG_ROOT/var/lib/brine/$role"
	rm -f "$DPKG_ROOT/var/log/brine/$role.log"*
	;;
esac
case "$1" in
remove | purge)
	if systemd_running; then
		systemctl daemon-reload || true
	fi
	;;
esac
exit 0
