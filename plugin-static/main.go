// Command vpccni-cni is the vpccni CNI plugin as one static executable, for hosts without Python
// (Bottlerocket). It is a port of src/vpccni/plugin/cni.py, which stays the reference: the same
// checks in the same order, the same CNI error codes and messages, the same request bytes to
// the daemon (docs/plugin-api.md), the same DEL spool records and the same plugin log lines.
// Every failure is a CNI error JSON on stdout, never a Go panic.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"
)

// The verbs: one function each, like cmdAdd, cmdDel, ... in the reference plugins. Each
// returns what it prints on stdout.

// cmdAdd: the daemon assigns an address (and wires the pod it is passed); print its result.
func cmdAdd(call *Call) (string, error) {
	if err := enterPodNamespace(call); err != nil {
		releaseFds(call)
		return "", err
	}
	result, err := askDaemon(call, tryAgainLater)
	releaseFds(call)
	if err != nil {
		return "", err
	}
	converted, cniErr := convertResult(result, call.Version)
	if cniErr != nil {
		return "", cniErr
	}
	text, err := encodeJSON(converted)
	if err != nil {
		return "", &unexpected{"RecursionError", err.Error()}
	}
	var addresses []string
	if ips := result.Dict.Get("ips"); ips != nil {
		for _, ip := range ips.List {
			addresses = append(addresses, pyString(ip.Dict.Get("address").Str))
		}
	}
	call.Outcome = strings.Join(addresses, ", ")
	return text + "\n", nil
}

// cmdDel: the daemon releases the pod's address; while it is down, a spooled record will.
func cmdDel(call *Call) (string, error) {
	_, err := send(call, replyDepthDel)
	if down, ok := err.(*unreachable); ok {
		path, cniErr := spoolDel(call)
		if cniErr != nil {
			return "", cniErr
		}
		writeAll(2, []byte(fmt.Sprintf("vpccni-cni: daemon unreachable at %s (%s); DEL recorded in %s "+
			"for replay when it starts\n", call.SocketPath, down.why, path)))
		return "", nil
	}
	return "", err
}

// cmdCheck: the daemon compares the pod it is passed with prevResult; a difference is its
// error.
func cmdCheck(call *Call) (string, error) {
	if err := enterPodNamespace(call); err != nil {
		releaseFds(call)
		return "", err
	}
	_, err := askDaemon(call, tryAgainLater)
	releaseFds(call)
	return "", err
}

// cmdStatus: the daemon must answer ready; down or not ready is error 50.
func cmdStatus(call *Call) (string, error) {
	result, err := askDaemon(call, notAvailable)
	if err != nil {
		return "", err
	}
	if ready := result.Dict.Get("ready"); ready == nil || ready.Kind != KindBool || !ready.Bool {
		return "", cniError(notAvailable, "the vpccni daemon is not ready", shown(result, 200))
	}
	return "", nil
}

// cmdGC: the daemon releases this network's addresses not in cni.dev/valid-attachments.
func cmdGC(call *Call) (string, error) {
	_, err := askDaemon(call, tryAgainLater)
	return "", err
}

var verbs = map[string]func(*Call) (string, error){
	"ADD": cmdAdd, "DEL": cmdDel, "CHECK": cmdCheck, "STATUS": cmdStatus, "GC": cmdGC,
}

// dispatch runs the verb CNI_COMMAND names: what to print, or the refusal. *call receives the
// checked call, for the plugin log.
func dispatch(command []rune, traced **Call) (string, error) {
	name := string(command)
	if name == "VERSION" {
		return versionReply, nil
	}
	verb, known := verbs[name]
	if !known {
		msg := "CNI_COMMAND is not set"
		if len(command) > 0 {
			msg = "unknown CNI_COMMAND " + shownText(reprStr(command), 80)
		}
		return "", cniError(invalidEnvironment, msg, "expected one of ADD, DEL, CHECK, VERSION, STATUS, GC")
	}
	var stdin io.Reader = os.Stdin
	if !stdinOpen {
		stdin = strings.NewReader("") // Python has no sys.stdin then: cni.py reads b""
	}
	call, err := readCall(name, stdin)
	if err != nil {
		if name != "DEL" {
			return "", err
		}
		writeAll(2, backslashReplace(runesOf(
			"vpccni-cni: DEL of input that ADD refuses: nothing to do ("+err.Msg+")\n")))
		return "", nil
	}
	*traced = call
	out, verbErr := verb(call)
	if cniErr, ok := verbErr.(*CniError); ok {
		cniErr.CniVersion = call.Version
	}
	return out, verbErr
}

// errorJSON is print_error's body.
func errorJSON(e *CniError) string {
	var b strings.Builder
	b.WriteString(`{"cniVersion": `)
	encodeString(&b, []rune(e.CniVersion))
	b.WriteString(`, "code": ` + e.Code + `, "msg": `)
	encodeString(&b, runesOf(e.Msg))
	b.WriteString(`, "details": `)
	encodeString(&b, runesOf(e.Details))
	b.WriteString("}\n")
	return b.String()
}

// writeAll writes data to fd (stdout is written with write(2), never through os.Stdout, so a
// closed pipe is an error to report, as in Python, not a SIGPIPE death).
func writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, err := syscall.Write(fd, data)
		if err == syscall.EINTR || err == syscall.EAGAIN {
			continue
		}
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// unexpectedError is main's last line of defence: still a CNI error, never a traceback.
func unexpectedError(typeName, text string) *CniError {
	return cniError(tryAgainLater, "vpccni-cni failed unexpectedly: "+typeName,
		pyString(truncate(runesOf(text), 200))+"; this is a vpccni bug - please report it")
}

// run is cni.py's main: the exit status; prints a result, nothing, or a CNI error.
func run() (status int) {
	started := time.Now()
	var call *Call
	var failure *CniError
	defer func() {
		if recovered := recover(); recovered != nil {
			if e, ok := recovered.(*unexpected); ok {
				failure = unexpectedError(e.typeName, e.text)
			} else {
				failure = unexpectedError("panic", fmt.Sprint(recovered))
			}
			status = printError(failure)
		}
		logCall(call, failure, time.Since(started))
	}()
	out, err := dispatch(environ("CNI_COMMAND"), &call)
	switch e := err.(type) {
	case nil:
	case *CniError:
		failure = e
		return printError(e)
	case *unexpected:
		failure = unexpectedError(e.typeName, e.text)
		return printError(failure)
	default:
		failure = unexpectedError("OSError", e.Error())
		return printError(failure)
	}
	if writeErr := writeAll(1, []byte(out)); writeErr != nil {
		// write_result: a stdout that is closed or broken is error 5
		failure = cniError(ioFailure, "cannot write the result on stdout", osError(writeErr)+
			"; the runtime reads the result there: it must keep the plugin's stdout open")
		if call != nil {
			failure.CniVersion = call.Version
		}
		return printError(failure)
	}
	return 0
}

// printError is print_error: the CNI error JSON on stdout (if stdout is gone, a one-line note
// on stderr); returns the exit status.
func printError(e *CniError) int {
	if err := writeAll(1, []byte(errorJSON(e))); err != nil {
		writeAll(2, backslashReplace(runesOf("vpccni-cni: cannot print the CNI error on stdout ("+
			osError(err)+"): error "+e.Code+": "+e.Msg+"\n")))
	}
	return 1
}

// stdinOpen is whether descriptor 0 was open when the plugin started (fcntl F_GETFD, as
// CPython's is_valid_fd): without it Python has no sys.stdin and cni.py reads stdin as empty,
// while a descriptor 0 that is open but cannot be read (write-only) is error 5 in both.
var stdinOpen bool

func main() {
	_, _, errno := syscall.RawSyscall(syscall.SYS_FCNTL, 0, syscall.F_GETFD, 0)
	stdinOpen = errno == 0
	os.Exit(run())
}
