// ADD and CHECK pass the pod's network namespace to the daemon (docs/plugin-api.md), as
// cni.py's enter_pod_namespace does: open CNI_NETNS, enter it (setns on this locked OS thread;
// the process is short-lived and never goes back), create a NETLINK_ROUTE socket there, and send
// both descriptors with the request's first sendmsg (SCM_RIGHTS). The daemon's Unix socket is
// reached by path, which no network namespace hides. DEL, GC and STATUS pass nothing.

package main

import (
	"runtime"
	"syscall"
)

const cloneNewNet = 0x40000000

// requestFds is the request's "fds": what the descriptors passed with command are, in order.
func requestFds(command string) []string {
	if command == "ADD" || command == "CHECK" {
		return []string{"netns", "netlink"}
	}
	return nil
}

// enterPodNamespace opens CNI_NETNS, enters it and creates a NETLINK_ROUTE socket there; both
// descriptors go into call.Fds. Every failure is CNI error 4.
func enterPodNamespace(call *Call) *CniError {
	path := string(call.CNI["netns"])
	netns, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return cniError(invalidEnvironment,
			"CNI_NETNS "+path+": cannot open the network namespace: "+strerror(errnoOf(err)),
			"CNI_NETNS must name the pod's network namespace (e.g. /var/run/netns/NAME)")
	}
	call.Fds = append(call.Fds, netns)
	runtime.LockOSThread() // setns moves this thread only; everything after runs on it
	if _, _, errno := syscall.RawSyscall(sysSetns, uintptr(netns), cloneNewNet, 0); errno != 0 {
		why := strerror(errno)
		if errno == syscall.EINVAL {
			why = "it is not a network namespace"
		}
		return cniError(invalidEnvironment,
			"CNI_NETNS "+path+": cannot enter the network namespace: "+why,
			"the plugin enters the pod's namespace to pass it to the daemon; it must run as "+
				"root (CAP_SYS_ADMIN), as container runtimes run CNI plugins")
	}
	netlink, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC,
		syscall.NETLINK_ROUTE)
	if err != nil {
		return cniError(invalidEnvironment,
			"CNI_NETNS "+path+": cannot create a netlink socket in the network namespace: "+
				strerror(errnoOf(err)), "")
	}
	call.Fds = append(call.Fds, netlink)
	return nil
}

// releaseFds closes the descriptors passed to the daemon (it holds its own copies).
func releaseFds(call *Call) {
	for _, fd := range call.Fds {
		syscall.Close(fd)
	}
	call.Fds = nil
}
