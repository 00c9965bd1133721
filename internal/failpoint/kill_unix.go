//go:build unix

package failpoint

import (
	"os"
	"syscall"
)

// kill sends SIGKILL to the current process.
func kill() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }

// freeze stops the current process until it gets SIGCONT.
func freeze() { _ = syscall.Kill(os.Getpid(), syscall.SIGSTOP) }
