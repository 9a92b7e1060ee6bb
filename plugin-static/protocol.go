// The daemon: one request line, one reply line over a Unix stream socket (docs/plugin-api.md),
// with cni.py's timeouts, its reading of the reply and its conversion of the ADD result.

package main

import (
	"fmt"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// timeouts: seconds to connect and get the reply; past it the daemon counts as down.
var timeouts = map[string]float64{"ADD": 10, "DEL": 10, "CHECK": 10, "GC": 30, "STATUS": 3}

// unreachable is cni.py's DaemonUnreachable: no complete reply came back.
type unreachable struct{ why string }

func (e *unreachable) Error() string { return e.why }

// unexpected is an exception cni.py does not expect (its main reports it as a vpccni bug):
// typeName and str() of the Python exception it mirrors.
type unexpected struct{ typeName, text string }

func (e *unexpected) Error() string { return e.text }

// requestBytes is request_bytes: the request line; a config too big for the daemon is refused
// here (7).
func requestBytes(call *Call) ([]byte, *CniError) {
	cni := DictOf("command", Str(call.Command))
	for _, v := range variables {
		cni.Dict.Set([]rune(v.field), Runes(call.CNI[v.field]))
	}
	request := DictOf(
		"version", IntValue(protocolVersion),
		"op", Str(strings.ToLower(call.Command)),
		"cni", cni,
		"config", call.Config,
	)
	if fds := requestFds(call.Command); len(fds) > 0 {
		names := make([]*Value, len(fds))
		for i, name := range fds {
			names[i] = Str(name)
		}
		request.Dict.Set([]rune("fds"), ListOf(names...))
	}
	text, err := encodeJSON(request)
	if err != nil {
		return nil, cniError(invalidConfig, "cannot re-encode the network config", err.Error())
	}
	data := []byte(text + "\n")
	if len(data) > maxStdin {
		return nil, cniError(invalidConfig, "the request for the daemon is larger than 1 MiB",
			"the network configuration (escaped as ASCII JSON) or CNI_ARGS is too large")
	}
	return data, nil
}

type pollFd struct {
	fd      int32
	events  int16
	revents int16
}

const (
	pollIn  = 0x1
	pollOut = 0x4
)

var errTimedOut = &unreachable{"timed out"}

// wait polls fd for events until deadline; errTimedOut past it.
func wait(fd int, events int16, deadline time.Time) error {
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return errTimedOut
		}
		p := pollFd{fd: int32(fd), events: events}
		ts := syscall.NsecToTimespec(left.Nanoseconds())
		n, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&p)), 1,
			uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno != 0:
			return errno
		case n > 0:
			return nil
		}
	}
}

// exchange sends data (passing fds with its first sendmsg) and returns the reply line;
// *unreachable if none arrives within timeout seconds.
func exchange(socketPath string, data []byte, fds []int, timeout float64) ([]byte, error) {
	seconds := time.Duration(timeout * float64(time.Second))
	deadline := time.Now().Add(seconds)
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, &unexpected{"OSError", osError(err)}
	}
	defer syscall.Close(fd)
	reply, err := talk(fd, socketPath, data, fds, seconds, deadline)
	if err == errTimedOut {
		return nil, &unreachable{fmt.Sprintf("no reply within %s s", formatG(timeout))}
	}
	if errno, ok := err.(syscall.Errno); ok {
		return nil, &unreachable{strerror(errno)}
	}
	return reply, err
}

func talk(fd int, socketPath string, data []byte, fds []int, timeout time.Duration, deadline time.Time) ([]byte, error) {
	if err := connect(fd, socketPath, time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if err := sendAll(fd, data, fds, time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	var reply []byte
	buf := make([]byte, 65536)
	for len(reply) <= maxReply {
		if time.Until(deadline) < time.Millisecond {
			deadline = time.Now().Add(time.Millisecond)
		}
		if err := wait(fd, pollIn, deadline); err != nil {
			return nil, err
		}
		n, err := syscall.Read(fd, buf)
		if err == syscall.EAGAIN || err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		reply = append(reply, buf[:n]...)
		if containsByte(buf[:n], '\n') {
			break
		}
	}
	if len(reply) == 0 {
		return nil, &unreachable{"the connection closed before a reply"}
	}
	if len(reply) > maxReply {
		return nil, cniError(tryAgainLater, "the vpccni daemon's reply is larger than 16 MiB", "")
	}
	for i, b := range reply {
		if b == '\n' {
			return reply[:i], nil
		}
	}
	return reply, nil
}

func containsByte(data []byte, b byte) bool {
	for _, c := range data {
		if c == b {
			return true
		}
	}
	return false
}

// connect is Python's socket.connect with a timeout on a non-blocking socket.
func connect(fd int, path string, deadline time.Time) error {
	for {
		err := syscall.Connect(fd, &syscall.SockaddrUnix{Name: path})
		switch err {
		case nil, syscall.EISCONN:
			return nil
		case syscall.EINTR:
			continue
		case syscall.EINPROGRESS, syscall.EALREADY:
			if err := wait(fd, pollOut, deadline); err != nil {
				return err
			}
			code, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ERROR)
			if err != nil {
				return err
			}
			if code != 0 {
				return syscall.Errno(code)
			}
			return nil
		}
		return err
	}
}

// sendAll is Python's sendall (after one sendmsg carrying fds, when there are any).
func sendAll(fd int, data []byte, fds []int, deadline time.Time) error {
	var rights []byte
	if len(fds) > 0 {
		rights = syscall.UnixRights(fds...)
	}
	for len(data) > 0 || rights != nil {
		if err := wait(fd, pollOut, deadline); err != nil {
			return err
		}
		n, err := syscall.SendmsgN(fd, data, rights, nil, syscall.MSG_NOSIGNAL)
		if err == syscall.EAGAIN || err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		rights = nil
		data = data[n:]
	}
	return nil
}

// invalidReply is _invalid_reply.
func invalidReply(why string) *CniError {
	return cniError(tryAgainLater, "the vpccni daemon sent an invalid reply: "+why,
		"plugin and daemon disagree on docs/plugin-api.md; check that both are the same release")
}

// The deepest reply parse_reply decodes: it runs two frames deeper than read_config when
// reached through ask_daemon (ADD, CHECK, GC, STATUS), one frame deeper from cmd_del. Past it,
// the reply is "not JSON" (measured as fastPathDepth is).
const (
	replyDepthAsked = fastPathDepth - 2
	replyDepthDel   = fastPathDepth - 1
)

// parseReply is parse_reply: the result of a success reply; a daemon error becomes a CniError
// with its code. depth is the deepest nesting decoded.
func parseReply(line []byte, depth int) (*Value, error) {
	text, err := decodeUTF8(line)
	var reply *Value
	if err == nil {
		reply, err = decodeJSONAt(text, depth, depth)
	}
	if err != nil {
		return nil, invalidReply("not JSON")
	}
	if !reply.IsDict() {
		return nil, invalidReply("not an object with a boolean 'ok'")
	}
	ok := reply.Dict.Get("ok")
	if ok == nil || ok.Kind != KindBool {
		return nil, invalidReply("not an object with a boolean 'ok'")
	}
	if !ok.Bool {
		errorValue := reply.Dict.Get("error")
		if !errorValue.IsDict() {
			errorValue = DictOf()
		}
		code, msg := errorValue.Dict.Get("code"), errorValue.Dict.Get("msg")
		details := errorValue.Dict.Get("details")
		if code == nil || code.Kind != KindInt || strings.HasPrefix(code.Int, "-") || code.Int == "0" || !msg.IsStr() {
			return nil, invalidReply("an error without an integer code and a message")
		}
		detailText := ""
		switch {
		case details == nil:
		case details.IsStr():
			detailText = pyString(details.Str)
		default:
			encoded, err := encodeJSON(details)
			if err != nil {
				return nil, &unexpected{"RecursionError", err.Error()}
			}
			detailText = encoded
		}
		return nil, &CniError{code.Int, pyString(msg.Str), detailText, specVersion}
	}
	result := reply.Dict.Get("result")
	if !isProtocolVersion(reply.Dict.Get("version")) || !result.IsDict() {
		return nil, invalidReply(fmt.Sprintf("expected protocol version %d with a result object", protocolVersion))
	}
	return result, nil
}

// isProtocolVersion is `value == 1` in Python: 1, 1.0 and True all compare equal to 1.
func isProtocolVersion(v *Value) bool {
	if v == nil {
		return false
	}
	switch v.Kind {
	case KindInt:
		return v.Int == "1"
	case KindFloat:
		return v.Float == 1
	case KindBool:
		return v.Bool
	}
	return false
}

// send is send: the result in the daemon's reply to call; *unreachable if no reply comes.
func send(call *Call, depth int) (*Value, error) {
	line, err := exchange(call.SocketPath, call.Payload, call.Fds, timeouts[call.Command])
	if err != nil {
		return nil, err
	}
	return parseReply(line, depth)
}

// askDaemon is ask_daemon: send, with an unreachable daemon reported as CNI error code.
func askDaemon(call *Call, code int) (*Value, error) {
	result, err := send(call, replyDepthAsked)
	if down, ok := err.(*unreachable); ok {
		return nil, cniError(code, "the vpccni daemon is unreachable at "+call.SocketPath,
			down.why+"; start it (vpccni ipamd) or point VPCCNI_SOCKET / the config key socket "+
				"at its socket")
	}
	return result, err
}

// convertResult is convert_result: the daemon's 1.0.0-shaped ADD result in version, with
// cniVersion first, as the CNI library converts: 0.3.x / 0.4.0 keep the 0.4.0 fields (a version
// per IP), 0.1.0 / 0.2.0 become ip4 / ip6.
func convertResult(result *Value, version string) (*Value, *CniError) {
	ips := result.Dict.Get("ips")
	if ips == nil {
		ips = ListOf()
	}
	valid := ips.IsList()
	if valid {
		for _, ip := range ips.List {
			if !ip.IsDict() || !ip.Dict.Get("address").IsStr() {
				valid = false
			}
		}
	}
	if !valid {
		return nil, invalidReply("the ADD result's ips are not a list of addresses")
	}
	for _, key := range []string{"interfaces", "routes"} {
		items := result.Dict.Get(key)
		ok := items == nil || items.IsList()
		if ok && items != nil {
			for _, item := range items.List {
				ok = ok && item.IsDict()
			}
		}
		if !ok {
			return nil, invalidReply(fmt.Sprintf("the ADD result's %s is not a list of objects", key))
		}
	}
	converted := DictOf("cniVersion", Str(version))
	if oneOf(version, legacyVersions) {
		return legacyResult(result, ips, converted, version)
	}
	if !oneOf(version, v04Versions) {
		for i := 0; i < result.Dict.Len(); i++ {
			key, value := result.Dict.Item(i)
			converted.Dict.Set(key, value)
		}
		converted.Dict.Set([]rune("cniVersion"), Str(version))
		return converted, nil
	}
	kept := func(items *Value, keys ...string) *Value {
		list := ListOf()
		for _, item := range items.List {
			copied := DictOf()
			for _, key := range keys {
				if item.Dict.Has(key) {
					copied.Dict.Set([]rune(key), item.Dict.Get(key))
				}
			}
			list.List = append(list.List, copied)
		}
		return list
	}
	if result.Dict.Has("interfaces") {
		converted.Dict.Set([]rune("interfaces"), kept(result.Dict.Get("interfaces"), "name", "mac", "sandbox"))
	}
	converted4 := ListOf()
	for _, ip := range ips.List {
		family := "4"
		if strings.ContainsRune(string(ip.Dict.Get("address").Str), ':') {
			family = "6"
		}
		item := DictOf("version", Str(family))
		for _, key := range []string{"interface", "address", "gateway"} {
			if ip.Dict.Has(key) {
				item.Dict.Set([]rune(key), ip.Dict.Get(key))
			}
		}
		converted4.List = append(converted4.List, item)
	}
	converted.Dict.Set([]rune("ips"), converted4)
	if result.Dict.Has("routes") {
		converted.Dict.Set([]rune("routes"), kept(result.Dict.Get("routes"), "dst", "gw"))
	}
	if result.Dict.Has("dns") {
		converted.Dict.Set([]rune("dns"), result.Dict.Get("dns"))
	}
	return converted, nil
}

// legacyResult is _legacy_result: 0.1.0 / 0.2.0, as the CNI library converts: the first address
// of each family as ip4 / ip6 (ip, gateway), the routes of that family under it, no interfaces.
func legacyResult(result, ips, converted *Value, version string) (*Value, *CniError) {
	families := map[string]*Value{}
	for _, ip := range ips.List {
		family := "ip4"
		if strings.ContainsRune(string(ip.Dict.Get("address").Str), ':') {
			family = "ip6"
		}
		if families[family] == nil {
			item := DictOf("ip", ip.Dict.Get("address"))
			if ip.Dict.Has("gateway") {
				item.Dict.Set([]rune("gateway"), ip.Dict.Get("gateway"))
			}
			families[family] = item
		}
	}
	if len(families) == 0 {
		return nil, invalidReply(fmt.Sprintf(
			"the ADD result holds no address, which a %s result needs", version))
	}
	if routes := result.Dict.Get("routes"); routes != nil {
		for _, route := range routes.List {
			family := "ip4"
			if dst := route.Dict.Get("dst"); dst.IsStr() && strings.ContainsRune(string(dst.Str), ':') {
				family = "ip6"
			}
			item := families[family]
			if item == nil {
				continue
			}
			kept := DictOf()
			for _, key := range []string{"dst", "gw"} {
				if route.Dict.Has(key) {
					kept.Dict.Set([]rune(key), route.Dict.Get(key))
				}
			}
			if !item.Dict.Has("routes") {
				item.Dict.Set([]rune("routes"), ListOf())
			}
			list := item.Dict.Get("routes")
			list.List = append(list.List, kept)
		}
	}
	for _, family := range []string{"ip4", "ip6"} {
		if item := families[family]; item != nil {
			converted.Dict.Set([]rune(family), item)
		}
	}
	if result.Dict.Has("dns") {
		converted.Dict.Set([]rune("dns"), result.Dict.Get("dns"))
	}
	return converted, nil
}
