package s3test

import (
	"os/exec"
	"syscall"
)

// setParentDeath has the kernel stop the gateway if the test binary dies without running its cleanups.
func setParentDeath(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
