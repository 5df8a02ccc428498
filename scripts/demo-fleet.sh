#!/usr/bin/env bash
# make demo-fleet: the whole brine story, narrated, on six hosts made of
# network namespaces on a bridge (198.18.0.0/24): keys, the mine,
# /etc/hosts from the mine, the MongoDB replica set config, the web tier
# (PHP under uWSGI behind nginx, built by highstate) redeployed by signed
# GitHub pushes while a client on each web host loops requests (each
# deployed page is printed as fetched through nginx and uWSGI, and the
# loop's counts), an address change the reactor follows, a master crash
# and a pulled cable. Everything is torn down at the end, on failure and
# on Ctrl-C.
#
# It runs the same test as `make test` (test/fleet TestStory) with
# BRINE_FLEET_NARRATE=1, so the demo cannot drift from what is tested.
# Needs root (network namespaces), iproute2, nginx, uwsgi,
# uwsgi-plugin-php, php-cli and git.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "demo-fleet: network namespaces need root; try: sudo make demo-fleet" >&2
  exit 1
fi
export BRINE_FLEET_NARRATE=1
export BRINE_BIN_DIR=${BRINE_BIN_DIR:-$PWD/bin}
for b in brine-master brine-minion brinectl; do
  if [ ! -x "$BRINE_BIN_DIR/$b" ]; then
    echo "demo-fleet: $BRINE_BIN_DIR/$b missing; run make build (or make demo-fleet)" >&2
    exit 1
  fi
done
# -v streams the narration; the test's own progress lines are dropped. The
# filter ignores ^C so that it still shows the teardown the test does
# when interrupted; it ends when the test closes the pipe.
go test -count=1 -v -run '^TestStory$' -timeout 10m ./test/fleet/ |
  (trap '' INT; grep --line-buffered -v '^=== \(RUN\|NAME\|PAUSE\|CONT\)')
