// Package fleet proves the whole brine story end to end on a fleet of
// real hosts: network namespaces on a bridge (package netns), the real
// brine-master, brine-minion and brinectl binaries, Debian's nginx and
// real git. The story itself is TestStory; docs/fleet.md explains it, and
// `make demo-fleet` runs it with narration.
package fleet
