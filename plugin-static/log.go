// The plugin log (docs/plugin-api.md, "The plugin log"): one line per call, appended to the file
// AWS_VPC_K8S_PLUGIN_LOG_FILE (or the config's pluginLogFile) names, filtered by
// AWS_VPC_K8S_PLUGIN_LOG_LEVEL (or pluginLogLevel); never a reason for the call to fail.

package main

import (
	"fmt"
	"math"
	"os"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

var logLevels = map[string]int{"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40}

// firstTruthy is `environ.get(NAME) or config.get(key) or ""`.
func firstTruthy(fromEnv []rune, config *Value, key string) *Value {
	if len(fromEnv) > 0 {
		return Runes(fromEnv)
	}
	if config != nil {
		if value := config.Dict.Get(key); value.Truthy() {
			return value
		}
	}
	return Str("")
}

// pyStr is str(value) for the values a log level can be.
func pyStr(v *Value) []rune {
	if v.Kind == KindStr {
		return v.Str
	}
	return v.Repr()
}

// asciiLower is str.lower() where it can matter: only ASCII text can name a level.
func asciiLower(s []rune) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 0x80 {
			return ""
		}
		if r >= 'A' && r <= 'Z' {
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// logTarget is log_target: (file as a Python str, level); no file: no log.
func logTarget(call *Call) ([]rune, int) {
	var config *Value
	if call != nil {
		config = call.Config
	}
	path := firstTruthy(environ("AWS_VPC_K8S_PLUGIN_LOG_FILE"), config, "pluginLogFile")
	level := firstTruthy(environ("AWS_VPC_K8S_PLUGIN_LOG_LEVEL"), config, "pluginLogLevel")
	var file []rune
	if path.IsStr() {
		file = path.Str
	}
	name := string(file)
	if !strings.HasPrefix(name, "/") && name != "stdout" && name != "stderr" {
		file = nil // a relative path would land wherever the runtime runs the plugin
	}
	number, ok := logLevels[asciiLower(pyStr(level))]
	if !ok {
		number = 10 // upstream's default: debug
	}
	return file, number
}

// logLine is log_line: what was asked and what came of it.
func logLine(call *Call, command []rune, failure *CniError, elapsed time.Duration) []rune {
	stamp := time.Now().UTC().Format("2006-01-02T15:04:05Z")
	who := ""
	if call != nil {
		who = fmt.Sprintf(" network=%s container=%s ifname=%s netns=%s",
			pyString(call.Config.Dict.Get("name").Str), string(call.CNI["container_id"]),
			string(call.CNI["ifname"]), string(call.CNI["netns"]))
	}
	var result string
	if failure != nil {
		result = fmt.Sprintf("error %s: %s", failure.Code, failure.Msg)
		if failure.Details != "" {
			result += " (" + failure.Details + ")"
		}
	} else {
		result = "ok"
		if call != nil && call.Outcome != "" {
			result += " " + call.Outcome
		}
	}
	shownCommand := "-"
	if len(command) > 0 {
		shownCommand = pyString(command)
	}
	ms := math.RoundToEven(elapsed.Seconds() * 1000)
	return runesOf(fmt.Sprintf("%s vpccni-cni[%d] %s%s -> %s (%.0f ms)\n",
		stamp, os.Getpid(), shownCommand, who, result, ms))
}

// backslashReplace is str.encode("utf-8", "backslashreplace").
func backslashReplace(s []rune) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if isSurrogate(r) {
			out = append(out, fmt.Sprintf("\\u%04x", r)...)
		} else {
			out = utf8.AppendRune(out, r)
		}
	}
	return out
}

// logCall is log_call: append the call's line to the plugin log; any failure is swallowed.
func logCall(call *Call, failure *CniError, elapsed time.Duration) {
	defer func() { _ = recover() }() // the log must never fail the CNI call
	file, level := logTarget(call)
	if len(file) == 0 || (failure == nil && level > 20) {
		return
	}
	line := backslashReplace(logLine(call, environ("CNI_COMMAND"), failure, elapsed))
	if name := string(file); name == "stdout" || name == "stderr" {
		writeAll(2, line) // stdout carries the CNI result: never write there
		return
	}
	path, ok := encodeFS(file)
	if !ok {
		return
	}
	appendFile(path, line)
}

func appendFile(path string, data []byte) {
	flags := syscall.O_WRONLY | syscall.O_APPEND | syscall.O_CREAT | syscall.O_CLOEXEC
	fd, err := syscall.Open(path, flags, 0o600)
	if err == syscall.ENOENT {
		head, _ := pathSplit(path)
		if makedirs(head, 0o700) != nil {
			return
		}
		fd, err = syscall.Open(path, flags, 0o600)
	}
	if err != nil {
		return
	}
	defer syscall.Close(fd)
	_, _ = syscall.Write(fd, data)
}
