package master

import "syscall"

// umask narrows the mode the control socket is created with, so there is no
// window in which it is reachable by others before the chmod.
func umask(mask int) int { return syscall.Umask(mask) }
