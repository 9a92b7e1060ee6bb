// DEL while the daemon is down: a durable record for the daemon to replay
// (src/vpccni/daemon/spool.py), written as cni.py writes it: temp file, fsync, rename,
// directory fsync; the same file names and the same JSON.

package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// spooledIPs is spooled_ips: the addresses in prevResult, without prefix length; whatever is
// not an address is skipped.
func spooledIPs(config *Value) []*Value {
	previous := config.Dict.Get("prevResult")
	var found []*Value
	seen := map[string]bool{}
	if !previous.IsDict() {
		return found
	}
	ips := previous.Dict.Get("ips")
	if ips == nil || !ips.IsList() {
		return found
	}
	for _, ip := range ips.List {
		if !ip.IsDict() {
			continue
		}
		address := ip.Dict.Get("address")
		if !address.IsStr() {
			continue
		}
		text, ok := interfaceIP(string(address.Str))
		if ok && !seen[text] {
			seen[text] = true
			found = append(found, Str(text))
		}
	}
	return found
}

// pathJoin is os.path.join(directory, name) for a relative name.
func pathJoin(directory, name string) string {
	if directory == "" || strings.HasSuffix(directory, "/") {
		return directory + name
	}
	return directory + "/" + name
}

// pathSplit is posixpath.split.
func pathSplit(p string) (string, string) {
	i := strings.LastIndex(p, "/") + 1
	head, tail := p[:i], p[i:]
	if head != "" && head != strings.Repeat("/", len(head)) {
		head = strings.TrimRight(head, "/")
	}
	return head, tail
}

func isDir(p string) bool {
	var st syscall.Stat_t
	return syscall.Stat(p, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFDIR
}

func exists(p string) bool {
	var st syscall.Stat_t
	return syscall.Stat(p, &st) == nil
}

// pyOSError is an OSError with its str() (osError) and errno.
type pyOSError struct {
	errno syscall.Errno
	text  string
}

func (e *pyOSError) Error() string { return e.text }

func fail(err error, filenames ...string) *pyOSError {
	return &pyOSError{errnoOf(err), osError(err, filenames...)}
}

// makedirs is os.makedirs(name, mode, exist_ok=True): intermediate directories 0777 (less the
// umask), the last one mode.
func makedirs(name string, mode uint32) *pyOSError {
	head, tail := pathSplit(name)
	if tail == "" {
		head, tail = pathSplit(head)
	}
	if head != "" && tail != "" && !exists(head) {
		if err := makedirs(head, 0o777); err != nil && err.errno != syscall.EEXIST {
			return err
		}
		if tail == "." {
			return nil
		}
	}
	if err := syscall.Mkdir(name, mode); err != nil {
		if !isDir(name) {
			return fail(err, name)
		}
	}
	return nil
}

// spoolDel is spool_del: write the DEL record; returns its path.
func spoolDel(call *Call) (string, *CniError) {
	stem := []rune(string(call.CNI["container_id"]) + "-" + string(call.CNI["ifname"]))
	for i, r := range stem {
		if r >= 0x80 || !strings.ContainsRune(fileNameCharacters, r) {
			stem[i] = '_'
		}
	}
	now := time.Now()
	record := DictOf(
		"version", IntValue(protocolVersion),
		"network", call.Config.Dict.Get("name"),
		"container_id", Runes(call.CNI["container_id"]),
		"ifname", Runes(call.CNI["ifname"]),
		"ips", ListOf(spooledIPs(call.Config)...),
		"spooled_at", FloatValue(float64(now.UnixNano())/1e9),
	)
	path := pathJoin(call.SpoolDir, string(stem)+".json")
	temporary := pathJoin(call.SpoolDir, fmt.Sprintf(".%s.%d.tmp", string(stem), os.Getpid()))
	if err := writeRecord(call.SpoolDir, temporary, path, record); err != nil {
		var st syscall.Stat_t
		if syscall.Lstat(temporary, &st) == nil {
			if unlinkErr := syscall.Unlink(temporary); unlinkErr != nil {
				panic(&unexpected{"OSError", osError(unlinkErr, temporary)})
			}
		}
		return "", cniError(tryAgainLater,
			"the vpccni daemon is unreachable and the DEL record cannot be written to "+call.SpoolDir,
			err.text+"; the runtime should retry DEL; check VPCCNI_SPOOL_DIR / spoolDir")
	}
	return path, nil
}

func writeRecord(directory, temporary, path string, record *Value) *pyOSError {
	if err := makedirs(directory, 0o700); err != nil {
		return err
	}
	flags := syscall.O_WRONLY | syscall.O_CREAT | syscall.O_TRUNC | syscall.O_NOFOLLOW | syscall.O_CLOEXEC
	fd, err := syscall.Open(temporary, flags, 0o600)
	if err != nil {
		return fail(err, temporary)
	}
	text, _ := encodeJSON(record)
	data := []byte(text + "\n")
	for len(data) > 0 {
		n, err := syscall.Write(fd, data)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			syscall.Close(fd)
			return fail(err)
		}
		data = data[n:]
	}
	if err := syscall.Fsync(fd); err != nil {
		syscall.Close(fd)
		return fail(err)
	}
	if err := syscall.Close(fd); err != nil {
		return fail(err)
	}
	if err := syscall.Rename(temporary, path); err != nil {
		return fail(err, temporary, path)
	}
	dir, err := syscall.Open(directory, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fail(err, directory)
	}
	defer syscall.Close(dir)
	if err := syscall.Fsync(dir); err != nil {
		return fail(err)
	}
	return nil
}
