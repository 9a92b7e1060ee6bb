// Checking the call, in cni.py's order: decode stdin (6), cniVersion (1), the network config
// (7), the CNI_* variables (4); every message as cni.py words it.

package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
)

const (
	specVersion     = "1.1.0"
	protocolVersion = 1
	defaultSocket   = "/run/vpccni/ipamd.sock"
	defaultSpoolDir = "/var/lib/vpccni/del-spool"
	maxStdin        = 1 << 20 // bytes of network configuration; also the daemon's request limit
	maxReply        = 16 << 20
	maxSocketPath   = 107 // sun_path holds 108 bytes with the terminating NUL
	maxNetworkName  = 253
	versionReply    = `{"cniVersion": "1.1.0", "supportedVersions": ` +
		`["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}` + "\n"
	minMTU        = 576 // the pod MTU, as upstream's GetPodMTU bounds it
	maxMTU        = 9001
	maxVethPrefix = 4
)

// CNI error codes.
const (
	incompatibleVersion = 1
	invalidEnvironment  = 4
	ioFailure           = 5
	decodingFailed      = 6
	invalidConfig       = 7
	tryAgainLater       = 11
	notAvailable        = 50
)

// supportedVersions: upstream's plugin answers VERSION with the CNI library's full list.
var supportedVersions = []string{"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// legacyVersions have results with ip4/ip6 instead of ips; v04Versions a "version" per IP.
var legacyVersions = []string{"0.1.0", "0.2.0"}
var v04Versions = []string{"0.3.0", "0.3.1", "0.4.0"}

func oneOf(value string, values []string) bool {
	for _, v := range values {
		if v == value {
			return true
		}
	}
	return false
}

// minVersion: verbs that need a newer cniVersion (as the CNI library's skel enforces).
var minVersion = map[string]string{"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}

// reservedVethPrefixes: upstream's entrypoint refuses them.
var reservedVethPrefixes = []string{"eth", "lo", "vlan"}

// resultStyles: the ADD result's shape, config key resultStyle (docs/plugin-api.md); the
// daemon shapes the result, the plugin only refuses any other value.
var resultStyles = []string{"upstream", "plain"}

const resultStyleHelp = "'upstream' (the default) keeps the entries upstream's DEL reads, so a " +
	"node rolled back to aws-node can tear the pod down; 'plain' gives the pod's MAC and no " +
	"dummy entry, for runtimes that parse every MAC (podman)"

// variable is one CNI_* variable forwarded to the daemon.
type variable struct {
	name, field string
	limit       int
}

var variables = []variable{
	{"CNI_CONTAINERID", "container_id", 200}, // short enough for a spool file name
	{"CNI_NETNS", "netns", 4096},
	{"CNI_IFNAME", "ifname", 15}, // IFNAMSIZ - 1
	{"CNI_ARGS", "args", 65536},
	{"CNI_PATH", "path", 65536},
}

var required = map[string][]string{
	"ADD":    {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"},
	"CHECK":  {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"},
	"DEL":    {"CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"},
	"GC":     {"CNI_PATH"},
	"STATUS": {},
}

const fileNameCharacters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"

// CniError is a CNI error result: code, short message, details; printed as JSON on stdout.
// Msg and Details are Python strs (pyString).
type CniError struct {
	Code       string // an integer's digits: the daemon may pass any int
	Msg        string
	Details    string
	CniVersion string
}

func (e *CniError) Error() string { return e.Msg }

func cniError(code int, msg, details string) *CniError {
	return &CniError{fmt.Sprint(code), msg, details, specVersion}
}

// Call is one checked CNI invocation, ready to send.
type Call struct {
	Command    string
	Version    string
	Config     *Value // a dict
	CNI        map[string][]rune
	SocketPath string
	SpoolDir   string
	Payload    []byte
	Outcome    string
	Fds        []int // the pod's namespace and a netlink socket in it (ADD, CHECK)
}

// environ is the process environment as cni.py's process_environ decodes it (surrogateescape).
func environ(name string) []rune {
	value, _ := syscall.Getenv(name)
	return decodeSurrogateEscape(value)
}

func joinNames(names []string) string { return strings.Join(names, ", ") }

// readConfig is read_config: at most 1 MiB of UTF-8 holding one JSON object.
func readConfig(stdin io.Reader) (*Value, *CniError) {
	data, err := readAtMost(stdin, maxStdin+1)
	if err != nil {
		return nil, cniError(ioFailure, "cannot read the network config on stdin", osError(err))
	}
	if len(data) > maxStdin {
		return nil, cniError(invalidConfig,
			"the network configuration on stdin is larger than 1 MiB",
			"a CNI network configuration is a few hundred bytes; check what the runtime sends")
	}
	var config *Value
	textRunes, err := decodeUTF8(data)
	if err == nil {
		config, err = decodeJSON(textRunes)
	}
	if err != nil {
		return nil, cniError(decodingFailed,
			"cannot decode the network configuration on stdin as JSON",
			pyString(truncate(runesOf(err.Error()), 200)))
	}
	if !config.IsDict() {
		return nil, cniError(decodingFailed,
			"the network configuration on stdin is not a JSON object",
			"got a JSON "+config.TypeName())
	}
	return config, nil
}

// readAtMost reads up to limit bytes (Python's BufferedReader.read(limit)); a closed stdin
// reads as empty, as Python's sys.stdin is then None.
func readAtMost(r io.Reader, limit int) ([]byte, error) {
	data := make([]byte, 0, 4096)
	buf := make([]byte, 65536)
	for len(data) < limit {
		want := limit - len(data)
		if want > len(buf) {
			want = len(buf)
		}
		n, err := r.Read(buf[:want])
		data = append(data, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			if errnoOf(err) == syscall.EINTR || errnoOf(err) == syscall.EAGAIN {
				continue
			}
			return nil, err
		}
	}
	return data, nil
}

// checkVersion is check_version: the config's cniVersion, if supported and allowing the verb.
func checkVersion(command string, config *Value) (string, *CniError) {
	version := config.Dict.Get("cniVersion")
	if !version.IsStr() {
		return "", cniError(invalidConfig, "the network configuration has no cniVersion string",
			fmt.Sprintf("cniVersion is %s; use one of %s", shown(version, 80),
				joinNames(supportedVersions)))
	}
	text := runesKey(version.Str)
	if !oneOf(text, supportedVersions) {
		return "", cniError(incompatibleVersion,
			"incompatible CNI version "+shown(version, 80),
			"vpccni-cni supports "+joinNames(supportedVersions))
	}
	if needed, ok := minVersion[command]; ok && text < needed {
		err := cniError(incompatibleVersion,
			fmt.Sprintf("config version %s does not allow %s", text, command),
			fmt.Sprintf("%s needs cniVersion %s or later", command, needed))
		err.CniVersion = text
		return "", err
	}
	return text, nil
}

// isCniName is is_cni_name: [A-Za-z0-9][A-Za-z0-9_.-]*.
func isCniName(value []rune) bool {
	if len(value) == 0 {
		return false
	}
	first := value[0]
	if !(first >= 'a' && first <= 'z' || first >= 'A' && first <= 'Z' || first >= '0' && first <= '9') {
		return false
	}
	for _, r := range value {
		if r >= 0x80 || !strings.ContainsRune(fileNameCharacters, r) {
			return false
		}
	}
	return true
}

// badPath is bad_path: why value is not an acceptable absolute path ("" when it is).
func badPath(value *Value, limit int) string {
	if !value.IsStr() || len(value.Str) == 0 || value.Str[0] != '/' {
		return "must be an absolute path"
	}
	if !isPrintable(value.Str) {
		return "contains control or non-printable characters"
	}
	if utf8Len(value.Str) > limit {
		return fmt.Sprintf("is longer than %d bytes", limit)
	}
	return ""
}

// checkConfig is check_config: the keys this plugin relies on, upstream's mtu (a string
// there) and vethPrefix, and resultStyle; the daemon checks the rest (and these again).
func checkConfig(command string, config *Value) *CniError {
	name := config.Dict.Get("name")
	if !name.IsStr() || len(name.Str) == 0 || len(name.Str) > maxNetworkName || !isCniName(name.Str) {
		return cniError(invalidConfig, "invalid network name "+shown(name, 80),
			"name must be a string of letters, digits, '_', '.', '-' starting with a letter or "+
				"digit, at most 253 characters")
	}
	for _, key := range []struct {
		name  string
		limit int
	}{{"socket", maxSocketPath}, {"spoolDir", 4096}} {
		if config.Dict.Has(key.name) {
			value := config.Dict.Get(key.name)
			if why := badPath(value, key.limit); why != "" {
				return cniError(invalidConfig, fmt.Sprintf("config key %s %s", key.name, why),
					shown(value, 80))
			}
		}
	}
	if config.Dict.Has("mtu") && !validPodMTU(config.Dict.Get("mtu")) {
		return cniError(invalidConfig,
			fmt.Sprintf("config key mtu %s is not a pod MTU", shown(config.Dict.Get("mtu"), 40)),
			fmt.Sprintf("give an integer from %d to %d, or a string of its digits (upstream's "+
				`conflist writes "9001")`, minMTU, maxMTU))
	}
	if config.Dict.Has("vethPrefix") {
		prefix := config.Dict.Get("vethPrefix")
		if why := whyInvalidVethPrefix(prefix); why != "" {
			return cniError(invalidConfig,
				fmt.Sprintf("config key vethPrefix %s %s", shown(prefix, 40), why),
				"the host-side veth name prefix: 1 to 4 letters, digits, '_', '.', '-', not eth, "+
					"lo or vlan (as upstream's AWS_VPC_K8S_CNI_VETHPREFIX)")
		}
	}
	if config.Dict.Has("resultStyle") {
		style := config.Dict.Get("resultStyle")
		if !style.IsStr() || !oneOf(runesKey(style.Str), resultStyles) {
			return cniError(invalidConfig,
				fmt.Sprintf("config key resultStyle %s is not 'upstream' or 'plain'",
					shown(style, 40)),
				resultStyleHelp)
		}
	}
	previous := config.Dict.Get("prevResult")
	isNone := previous == nil || previous.Kind == KindNull
	if isNone && command == "CHECK" {
		return cniError(invalidConfig, "CHECK needs prevResult", "the runtime must send the ADD result")
	}
	if !isNone {
		ips := (*Value)(nil)
		if previous.IsDict() {
			ips = previous.Dict.Get("ips")
		}
		if !previous.IsDict() || (ips != nil && !ips.IsList()) {
			return cniError(invalidConfig, "prevResult is not a CNI result", shown(previous, 80))
		}
	}
	if command == "GC" {
		return checkAttachments(config.Dict.Get("cni.dev/valid-attachments"))
	}
	return nil
}

// validPodMTU is `pod_mtu(value) is not None`: an integer, or a string of at most 10 ASCII
// digits (as upstream's conflist writes it), within 576-9001.
func validPodMTU(value *Value) bool {
	digits := ""
	switch {
	case value.IsStr() && len(value.Str) > 0 && len(value.Str) <= 10:
		for _, r := range value.Str {
			if r < '0' || r > '9' {
				return false
			}
		}
		digits = string(value.Str)
	case value != nil && value.Kind == KindInt:
		digits = value.Int
	default:
		return false
	}
	number, err := strconv.ParseInt(digits, 10, 64)
	return err == nil && number >= minMTU && number <= maxMTU
}

// whyInvalidVethPrefix is why_invalid_veth_prefix ("" when value is a host veth prefix).
func whyInvalidVethPrefix(value *Value) string {
	if !value.IsStr() {
		return "is not a string"
	}
	if len(value.Str) == 0 || len(value.Str) > maxVethPrefix {
		return fmt.Sprintf("must be 1 to %d characters long", maxVethPrefix)
	}
	for _, r := range value.Str {
		if r >= 0x80 || !strings.ContainsRune(fileNameCharacters, r) {
			return "may hold only letters, digits, '_', '.' and '-'"
		}
	}
	if oneOf(string(value.Str), reservedVethPrefixes) {
		return "is reserved (eth, lo and vlan name the node's own links)"
	}
	return ""
}

// checkAttachments: GC must list the attachments to keep, else the daemon would release all.
func checkAttachments(attachments *Value) *CniError {
	ok := attachments.IsList()
	if ok {
		for _, item := range attachments.List {
			if !item.IsDict() || !item.Dict.Get("containerID").IsStr() || !item.Dict.Get("ifname").IsStr() {
				ok = false
				break
			}
		}
	}
	if !ok {
		return cniError(invalidConfig, "GC needs cni.dev/valid-attachments",
			"a list of {containerID, ifname} objects naming the attachments to keep")
	}
	return nil
}

// badVariable is _bad_variable: why a CNI_* value is unacceptable ("" when it is fine).
func badVariable(name string, value []rune, limit int) string {
	if !isPrintable(value) {
		return "contains control characters or is not valid UTF-8"
	}
	if utf8Len(value) > limit {
		return fmt.Sprintf("is longer than %d bytes", limit)
	}
	if name == "CNI_CONTAINERID" && !isCniName(value) {
		return "must be letters, digits, '_', '.', '-' starting with a letter or digit"
	}
	if name == "CNI_IFNAME" {
		text := string(value)
		if text == "." || text == ".." || strings.ContainsAny(text, "/: ") {
			return "is not a valid interface name"
		}
	}
	if name == "CNI_ARGS" {
		for _, pair := range strings.Split(string(value), ";") {
			key, rest, equals := strings.Cut(pair, "=")
			if pair != "" && (key == "" || !equals || strings.Contains(rest, "=")) {
				return fmt.Sprintf("has %s, not KEY=VALUE", shownText(reprStr([]rune(pair)), 40))
			}
		}
	}
	return ""
}

// readVariables is read_variables: the CNI_* variables (and VPCCNI_* overrides) into call;
// every problem in one error.
func readVariables(command string, call *Call) *CniError {
	var missing []string
	for _, name := range required[command] {
		if len(environ(name)) == 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return cniError(invalidEnvironment,
			"required environment variables missing: "+joinNames(missing),
			fmt.Sprintf("%s needs %s", command, joinNames(required[command])))
	}
	var problems []string
	for _, v := range variables {
		value := environ(v.name)
		if len(value) > 0 {
			if why := badVariable(v.name, value, v.limit); why != "" {
				problems = append(problems,
					fmt.Sprintf("%s %s: %s", v.name, why, shownText(reprStr(value), 60)))
			}
		}
		call.CNI[v.field] = value
	}
	for _, v := range []variable{{"VPCCNI_SOCKET", "", maxSocketPath}, {"VPCCNI_SPOOL_DIR", "", 4096}} {
		value := environ(v.name)
		if len(value) > 0 {
			if why := badPath(Runes(value), v.limit); why != "" {
				problems = append(problems,
					fmt.Sprintf("%s %s: %s", v.name, why, shownText(reprStr(value), 60)))
			}
		}
	}
	if len(problems) > 0 {
		return cniError(invalidEnvironment, "invalid environment variables", strings.Join(problems, "; "))
	}
	call.SocketPath = firstPath(environ("VPCCNI_SOCKET"), call.Config.Dict.Get("socket"), defaultSocket)
	call.SpoolDir = firstPath(environ("VPCCNI_SPOOL_DIR"), call.Config.Dict.Get("spoolDir"), defaultSpoolDir)
	return nil
}

// firstPath is `environ.get(NAME) or config.get(key) or DEFAULT` (both checked above).
func firstPath(fromEnv []rune, fromConfig *Value, fallback string) string {
	if len(fromEnv) > 0 {
		return string(fromEnv)
	}
	if fromConfig.IsStr() && len(fromConfig.Str) > 0 {
		return string(fromConfig.Str)
	}
	return fallback
}

// readCall is read_call: every check, in order; then the request.
func readCall(command string, stdin io.Reader) (*Call, *CniError) {
	config, err := readConfig(stdin)
	if err != nil {
		return nil, err
	}
	version, err := checkVersion(command, config)
	if err != nil {
		return nil, err
	}
	call := &Call{Command: command, Version: version, Config: config, CNI: map[string][]rune{},
		SocketPath: defaultSocket, SpoolDir: defaultSpoolDir}
	if err := checkConfig(command, config); err != nil {
		err.CniVersion = version
		return nil, err
	}
	if err := readVariables(command, call); err != nil {
		err.CniVersion = version
		return nil, err
	}
	payload, err := requestBytes(call)
	if err != nil {
		return nil, err
	}
	call.Payload = payload
	return call, nil
}
