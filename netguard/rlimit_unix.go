//go:build unix

package netguard

import "syscall"

// fdLimit is the process's open-file limit (Go raises the soft limit to the hard one at start).
func fdLimit() (int, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur == 0 {
		return 0, false
	}
	if r.Cur > 1<<30 {
		return 1 << 30, true
	}
	return int(r.Cur), true
}
