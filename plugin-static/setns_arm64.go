// The setns system call number on linux/arm64.

package main

const sysSetns = 268
