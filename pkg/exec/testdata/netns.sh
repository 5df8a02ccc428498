set -e
ip link set lo up
ip link add vtest0 type veth peer name vtest1
ip link set dev vtest0 address 02:00:00:00:00:07
ip link set dev vtest1 address 02:00:00:00:00:08
ip addr add 198.51.100.7/24 brd + dev vtest0
ip addr add 198.51.100.9/24 dev vtest0
ip addr add 203.0.113.5/24 brd 203.0.113.255 label vtest0:1 dev vtest0
ip -6 addr add 2001:db8::7/64 dev vtest0 nodad
ip addr add 100.64.0.1/10 dev vtest1
ip link set vtest0 up
exec "$@"
