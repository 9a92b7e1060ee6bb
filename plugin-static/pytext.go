// Python text semantics that cni.py's behaviour and messages depend on: str.isprintable,
// repr of str and float, the UTF-8 decoder's strict errors and surrogateescape, strerror, and
// OSError's str(). Strings are []rune so that lone surrogates (which JSON \u escapes and
// surrogateescape produce) survive as they do in a Python str.

package main

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"
)

// isPrintableRune is Python's str.isprintable for one character (tables.go).
func isPrintableRune(r rune) bool {
	i := sort.Search(len(nonPrintable), func(i int) bool { return nonPrintable[i][1] >= r })
	return i == len(nonPrintable) || r < nonPrintable[i][0]
}

// isPrintable is Python's str.isprintable.
func isPrintable(s []rune) bool {
	for _, r := range s {
		if !isPrintableRune(r) {
			return false
		}
	}
	return true
}

func isSurrogate(r rune) bool { return r >= 0xd800 && r <= 0xdfff }

// runesKey is a map key for a Python str: UTF-8, with surrogates encoded like any other code
// point (so that "\udcff" and "\ufffd" stay distinct keys).
func runesKey(s []rune) string {
	buf := make([]byte, 0, len(s))
	for _, r := range s {
		if isSurrogate(r) {
			buf = append(buf, 0xed, byte(0x80|(r>>6)&0x3f), byte(0x80|r&0x3f))
		} else {
			buf = utf8.AppendRune(buf, r)
		}
	}
	return string(buf)
}

// encodeFS is os.fsencode: UTF-8 with surrogateescape; ok is false where Python raises
// (a surrogate that no byte was escaped into, or an embedded NUL for a path).
func encodeFS(s []rune) (string, bool) {
	buf := make([]byte, 0, len(s))
	for _, r := range s {
		switch {
		case r == 0:
			return "", false
		case r >= 0xdc80 && r <= 0xdcff:
			buf = append(buf, byte(r-0xdc00))
		case isSurrogate(r):
			return "", false
		default:
			buf = utf8.AppendRune(buf, r)
		}
	}
	return string(buf), true
}

// text is a Python str of printable, surrogate-free characters as a Go string.
func text(s []rune) string { return string(s) }

// utf8Len is len(s.encode("utf-8")) for a str without surrogates.
func utf8Len(s []rune) int {
	n := 0
	for _, r := range s {
		n += utf8.RuneLen(r)
	}
	return n
}

// decodeError is Python's UnicodeDecodeError for bytes.decode("utf-8") (strict).
type decodeError struct {
	data       []byte
	start, end int
	reason     string
}

func (e *decodeError) Error() string {
	if e.end == e.start+1 {
		return fmt.Sprintf("'utf-8' codec can't decode byte 0x%02x in position %d: %s",
			e.data[e.start], e.start, e.reason)
	}
	return fmt.Sprintf("'utf-8' codec can't decode bytes in position %d-%d: %s",
		e.start, e.end-1, e.reason)
}

func isContinuation(b byte) bool { return b >= 0x80 && b <= 0xbf }

// utf8Step decodes the sequence at data[i:] as CPython's UTF-8 decoder does: the character
// and its length, or the error's byte range length and reason.
func utf8Step(data []byte, i int) (r rune, size int, bad int, reason string) {
	c := data[i]
	rest := len(data) - i
	if c < 0x80 {
		return rune(c), 1, 0, ""
	}
	truncated := func() (rune, int, int, string) { return 0, 0, rest, "unexpected end of data" }
	invalid := func(n int) (rune, int, int, string) { return 0, 0, n, "invalid continuation byte" }
	switch {
	case c < 0xc2:
		return 0, 0, 1, "invalid start byte"
	case c < 0xe0:
		if rest < 2 {
			return truncated()
		}
		if !isContinuation(data[i+1]) {
			return invalid(1)
		}
		return rune(c&0x1f)<<6 | rune(data[i+1]&0x3f), 2, 0, ""
	case c < 0xf0:
		if rest < 3 {
			if rest < 2 {
				return truncated()
			}
			c2 := data[i+1]
			if !isContinuation(c2) || (c == 0xe0 && c2 < 0xa0) || (c == 0xed && c2 >= 0xa0) {
				return invalid(1)
			}
			return truncated()
		}
		c2, c3 := data[i+1], data[i+2]
		if !isContinuation(c2) || (c == 0xe0 && c2 < 0xa0) || (c == 0xed && c2 >= 0xa0) {
			return invalid(1)
		}
		if !isContinuation(c3) {
			return invalid(2)
		}
		return rune(c&0x0f)<<12 | rune(c2&0x3f)<<6 | rune(c3&0x3f), 3, 0, ""
	case c < 0xf5:
		if rest < 4 {
			if rest < 2 {
				return truncated()
			}
			c2 := data[i+1]
			if !isContinuation(c2) || (c == 0xf0 && c2 < 0x90) || (c == 0xf4 && c2 >= 0x90) {
				return invalid(1)
			}
			if rest < 3 {
				return truncated()
			}
			if !isContinuation(data[i+2]) {
				return invalid(2)
			}
			return truncated()
		}
		c2, c3, c4 := data[i+1], data[i+2], data[i+3]
		if !isContinuation(c2) || (c == 0xf0 && c2 < 0x90) || (c == 0xf4 && c2 >= 0x90) {
			return invalid(1)
		}
		if !isContinuation(c3) {
			return invalid(2)
		}
		if !isContinuation(c4) {
			return invalid(3)
		}
		return rune(c&0x07)<<18 | rune(c2&0x3f)<<12 | rune(c3&0x3f)<<6 | rune(c4&0x3f), 4, 0, ""
	}
	return 0, 0, 1, "invalid start byte"
}

// decodeUTF8 is data.decode("utf-8").
func decodeUTF8(data []byte) ([]rune, error) {
	out := make([]rune, 0, len(data))
	for i := 0; i < len(data); {
		r, size, bad, reason := utf8Step(data, i)
		if bad > 0 {
			return nil, &decodeError{data, i, i + bad, reason}
		}
		out = append(out, r)
		i += size
	}
	return out, nil
}

// decodeSurrogateEscape is data.decode("utf-8", "surrogateescape"): how Python sees the
// environment.
func decodeSurrogateEscape(data string) []rune {
	raw := []byte(data)
	out := make([]rune, 0, len(raw))
	for i := 0; i < len(raw); {
		r, size, bad, _ := utf8Step(raw, i)
		if bad > 0 {
			for _, b := range raw[i : i+bad] {
				out = append(out, 0xdc00+rune(b))
			}
			i += bad
			continue
		}
		out = append(out, r)
		i += size
	}
	return out
}

// reprStr is Python's repr of a str.
func reprStr(s []rune) []rune {
	quote := '\''
	hasSingle, hasDouble := false, false
	for _, r := range s {
		hasSingle = hasSingle || r == '\''
		hasDouble = hasDouble || r == '"'
	}
	if hasSingle && !hasDouble {
		quote = '"'
	}
	out := make([]rune, 0, len(s)+2)
	out = append(out, quote)
	for _, r := range s {
		switch {
		case r == quote || r == '\\':
			out = append(out, '\\', r)
		case r == '\t':
			out = append(out, '\\', 't')
		case r == '\n':
			out = append(out, '\\', 'n')
		case r == '\r':
			out = append(out, '\\', 'r')
		case r < ' ' || r == 0x7f:
			out = append(out, []rune(fmt.Sprintf("\\x%02x", r))...)
		case r < 0x7f:
			out = append(out, r)
		case isPrintableRune(r):
			out = append(out, r)
		case r <= 0xff:
			out = append(out, []rune(fmt.Sprintf("\\x%02x", r))...)
		case r <= 0xffff:
			out = append(out, []rune(fmt.Sprintf("\\u%04x", r))...)
		default:
			out = append(out, []rune(fmt.Sprintf("\\U%08x", r))...)
		}
	}
	return append(out, quote)
}

// reprFloat is Python's repr of a finite float (and of inf/nan, for completeness).
func reprFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	shortest := strconv.FormatFloat(math.Abs(f), 'e', -1, 64) // d.ddde±XX
	mantissa, exponent, _ := strings.Cut(shortest, "e")
	digits := strings.Replace(mantissa, ".", "", 1)
	exp, _ := strconv.Atoi(exponent)
	point := exp + 1 // the value is 0.<digits> * 10**point
	sign := ""
	if math.Signbit(f) {
		sign = "-"
	}
	if point <= -4 || point > 16 {
		text := digits[:1]
		if len(digits) > 1 {
			text += "." + digits[1:]
		}
		e := point - 1
		esign := "+"
		if e < 0 {
			esign, e = "-", -e
		}
		return fmt.Sprintf("%s%se%s%02d", sign, text, esign, e)
	}
	switch {
	case point <= 0:
		return sign + "0." + strings.Repeat("0", -point) + digits
	case point >= len(digits):
		return sign + digits + strings.Repeat("0", point-len(digits)) + ".0"
	default:
		return sign + digits[:point] + "." + digits[point:]
	}
}

// formatG is Python's format(value, "g") for the timeouts ("10", "3", "30").
func formatG(f float64) string {
	return strconv.FormatFloat(f, 'g', 6, 64)
}

// strerror is os.strerror, as Python's OSError.strerror shows it.
func strerror(errno syscall.Errno) string {
	if int(errno) >= 0 && int(errno) < len(strerrorText) {
		return strerrorText[errno]
	}
	return fmt.Sprintf("Unknown error %d", int(errno))
}

// errnoOf is the errno in err (0 when it carries none).
func errnoOf(err error) syscall.Errno {
	for err != nil {
		if errno, ok := err.(syscall.Errno); ok {
			return errno
		}
		unwrapper, ok := err.(interface{ Unwrap() error })
		if !ok {
			return 0
		}
		err = unwrapper.Unwrap()
	}
	return 0
}

// osError is str() of Python's OSError from a failed call on filename (and filename2, for
// os.replace): "[Errno 20] Not a directory: '/x/y'".
func osError(err error, filenames ...string) string {
	errno := errnoOf(err)
	text := fmt.Sprintf("[Errno %d] %s", int(errno), strerror(errno))
	for i, name := range filenames {
		if i == 0 {
			text += ": "
		} else {
			text += " -> "
		}
		text += string(reprStr(decodeSurrogateEscape(name)))
	}
	return text
}

// truncate is text[:limit] of a Python str.
func truncate(s []rune, limit int) []rune {
	if len(s) > limit {
		return s[:limit]
	}
	return s
}

// runesOf turns a pyString (or any Go string) back into the Python str's characters.
func runesOf(s string) []rune {
	out := make([]rune, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c == 0xed && i+2 < len(s) && s[i+1] >= 0xa0 && s[i+1] <= 0xbf && isContinuation(s[i+2]) {
			out = append(out, 0xd000|rune(s[i+1]&0x3f)<<6|rune(s[i+2]&0x3f))
			i += 3
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		out = append(out, r)
		i += size
	}
	return out
}
