package main

import "syscall"

// procAttr makes a broker die with the harness (SIGKILL when the harness's
// thread that started it exits), so no broker outlives a crashed run.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
