// The setns system call number on linux/amd64 (Go 1.19's syscall package lacks SYS_SETNS here).

package main

const sysSetns = 308
