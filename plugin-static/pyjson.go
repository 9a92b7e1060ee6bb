// JSON as cni.py sees it: the values Python's json decoder builds (ints kept as their digits,
// never float64; dicts in insertion order, a repeated key keeping its first place and its last
// value), cni.py's strict decoder with Python's exact error messages and positions, its compact
// ASCII encoder (", " and ": " separators), and Python's repr of the decoded values (for the
// messages that show a value).

package main

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is a JSON value's Python type.
type Kind uint8

const (
	// KindNull is None.
	KindNull Kind = iota
	// KindBool is bool.
	KindBool
	// KindInt is int.
	KindInt
	// KindFloat is float.
	KindFloat
	// KindStr is str.
	KindStr
	// KindList is list.
	KindList
	// KindDict is dict.
	KindDict
)

// typeName is type(value).__name__.
var typeName = [...]string{"NoneType", "bool", "int", "float", "str", "list", "dict"}

// Value is one decoded JSON value.
type Value struct {
	Kind  Kind
	Bool  bool
	Int   string // decimal digits with an optional "-", as Python's int prints it
	Float float64
	Str   []rune
	List  []*Value
	Dict  *Dict
}

// Dict is a Python dict with str keys: insertion ordered.
type Dict struct {
	keys   [][]rune
	values []*Value
	index  map[string]int
}

// NewDict is an empty dict.
func NewDict() *Dict { return &Dict{index: map[string]int{}} }

// Set is d[key] = value.
func (d *Dict) Set(key []rune, value *Value) {
	k := runesKey(key)
	if i, ok := d.index[k]; ok {
		d.values[i] = value
		return
	}
	d.index[k] = len(d.keys)
	d.keys = append(d.keys, key)
	d.values = append(d.values, value)
}

// Get is d.get(key) (nil when absent).
func (d *Dict) Get(key string) *Value {
	if i, ok := d.index[key]; ok {
		return d.values[i]
	}
	return nil
}

// Has is key in d.
func (d *Dict) Has(key string) bool {
	_, ok := d.index[key]
	return ok
}

// Len is len(d).
func (d *Dict) Len() int { return len(d.keys) }

// Item is the i-th (key, value) pair.
func (d *Dict) Item(i int) ([]rune, *Value) { return d.keys[i], d.values[i] }

// Constructors for values built in Go.

// Null is None.
func Null() *Value { return &Value{Kind: KindNull} }

// Str is a str value.
func Str(s string) *Value { return &Value{Kind: KindStr, Str: []rune(s)} }

// Runes is a str value from runes.
func Runes(s []rune) *Value { return &Value{Kind: KindStr, Str: s} }

// IntValue is an int value.
func IntValue(n int64) *Value { return &Value{Kind: KindInt, Int: strconv.FormatInt(n, 10)} }

// FloatValue is a float value.
func FloatValue(f float64) *Value { return &Value{Kind: KindFloat, Float: f} }

// ListOf is a list value.
func ListOf(items ...*Value) *Value { return &Value{Kind: KindList, List: items} }

// DictOf is a dict value from alternating str keys and values.
func DictOf(pairs ...interface{}) *Value {
	d := NewDict()
	for i := 0; i < len(pairs); i += 2 {
		d.Set([]rune(pairs[i].(string)), pairs[i+1].(*Value))
	}
	return &Value{Kind: KindDict, Dict: d}
}

// IsStr is isinstance(v, str) (false for nil, an absent key).
func (v *Value) IsStr() bool { return v != nil && v.Kind == KindStr }

// IsDict is isinstance(v, dict).
func (v *Value) IsDict() bool { return v != nil && v.Kind == KindDict }

// IsList is isinstance(v, list).
func (v *Value) IsList() bool { return v != nil && v.Kind == KindList }

// Truthy is bool(v) (an absent value, nil, is falsy like None).
func (v *Value) Truthy() bool {
	if v == nil {
		return false
	}
	switch v.Kind {
	case KindBool:
		return v.Bool
	case KindInt:
		return v.Int != "0"
	case KindFloat:
		return v.Float != 0
	case KindStr:
		return len(v.Str) > 0
	case KindList:
		return len(v.List) > 0
	case KindDict:
		return v.Dict.Len() > 0
	}
	return false
}

// TypeName is type(v).__name__.
func (v *Value) TypeName() string { return typeName[v.Kind] }

// --- decoding: cni.py's decode_json ---

// The recursion limits of the Python plugin as installed (python3 -IS, Python 3.11): the C
// scanner counts one level per array or object against the interpreter's recursion limit, and
// cni.py's fast path runs two frames shallower than json.JSONDecoder, its fallback for the error
// message. Measured on the installed plugin (tests/plugin/test_static_parity.py checks both
// sides of each limit).
const (
	fastPathDepth     = 993 // deepest nesting decode_json accepts
	fallbackPathDepth = 991 // the depth at which json.JSONDecoder's message turns to recursion
	encodeDepth       = 993 // deepest nesting encode_json writes (the request wraps the config)
)

// jsonError is the ValueError (or RecursionError) decode_json raises: str(error) is Error().
type jsonError struct{ text string }

func (e *jsonError) Error() string { return e.text }

// stopIteration is the C scanner's "no value at idx".
type stopIteration struct{ idx int }

func (e *stopIteration) Error() string { return "StopIteration" }

type scanner struct {
	s        []rune
	maxDepth int
	depth    int
}

// positioned is json.JSONDecodeError's message: "msg: line L column C (char P)".
func (sc *scanner) positioned(msg string, pos int) error {
	line, lastNewline := 1, -1
	for i := 0; i < pos && i < len(sc.s); i++ {
		if sc.s[i] == '\n' {
			line++
			lastNewline = i
		}
	}
	return &jsonError{fmt.Sprintf("%s: line %d column %d (char %d)", msg, line, pos-lastNewline, pos)}
}

func isJSONSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

func (sc *scanner) skip(idx int) int {
	for idx < len(sc.s) && isJSONSpace(sc.s[idx]) {
		idx++
	}
	return idx
}

func (sc *scanner) has(idx int, word string) bool {
	if idx+len(word) > len(sc.s) {
		return false
	}
	for i, c := range word {
		if sc.s[idx+i] != c {
			return false
		}
	}
	return true
}

// scanOnce is _json's scan_once_unicode: the value at idx and the index after it.
func (sc *scanner) scanOnce(idx int) (*Value, int, error) {
	if idx >= len(sc.s) {
		return nil, 0, &stopIteration{idx}
	}
	switch sc.s[idx] {
	case '"':
		s, next, err := sc.scanString(idx + 1)
		if err != nil {
			return nil, 0, err
		}
		return Runes(s), next, nil
	case '{', '[':
		sc.depth++
		defer func() { sc.depth-- }()
		if sc.depth > sc.maxDepth {
			what := "array"
			if sc.s[idx] == '{' {
				what = "object"
			}
			return nil, 0, &jsonError{"maximum recursion depth exceeded while decoding a JSON " +
				what + " from a unicode string"}
		}
		if sc.s[idx] == '{' {
			return sc.parseObject(idx + 1)
		}
		return sc.parseArray(idx + 1)
	case 'n':
		if sc.has(idx, "null") {
			return Null(), idx + 4, nil
		}
	case 't':
		if sc.has(idx, "true") {
			return &Value{Kind: KindBool, Bool: true}, idx + 4, nil
		}
	case 'f':
		if sc.has(idx, "false") {
			return &Value{Kind: KindBool}, idx + 5, nil
		}
	case 'N':
		if sc.has(idx, "NaN") {
			return nil, 0, &jsonError{"NaN is not JSON"}
		}
	case 'I':
		if sc.has(idx, "Infinity") {
			return nil, 0, &jsonError{"Infinity is not JSON"}
		}
	case '-':
		if sc.has(idx, "-Infinity") {
			return nil, 0, &jsonError{"-Infinity is not JSON"}
		}
	}
	return sc.matchNumber(idx)
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// matchNumber is _match_number_unicode, with cni.py's parse_float (finite only) and Python's
// int (at most 4300 digits).
func (sc *scanner) matchNumber(start int) (*Value, int, error) {
	s, end := sc.s, len(sc.s)-1
	idx := start
	if s[idx] == '-' {
		idx++
		if idx > end {
			return nil, 0, &stopIteration{start}
		}
	}
	switch {
	case s[idx] >= '1' && s[idx] <= '9':
		idx++
		for idx <= end && isDigit(s[idx]) {
			idx++
		}
	case s[idx] == '0':
		idx++
	default:
		return nil, 0, &stopIteration{start}
	}
	isFloat := false
	if idx < end && s[idx] == '.' && isDigit(s[idx+1]) {
		isFloat = true
		idx += 2
		for idx <= end && isDigit(s[idx]) {
			idx++
		}
	}
	if idx < end && (s[idx] == 'e' || s[idx] == 'E') {
		eStart := idx
		idx++
		if idx < end && (s[idx] == '-' || s[idx] == '+') {
			idx++
		}
		for idx <= end && isDigit(s[idx]) {
			idx++
		}
		if isDigit(s[idx-1]) {
			isFloat = true
		} else {
			idx = eStart
		}
	}
	literal := string(s[start:idx])
	if isFloat {
		f, err := strconv.ParseFloat(literal, 64)
		if err != nil && !isRangeError(err) {
			return nil, 0, &jsonError{fmt.Sprintf("could not convert string to float: '%s'", literal)}
		}
		if f-f != 0 { // inf: cni.py's _finite_float refuses it
			return nil, 0, &jsonError{fmt.Sprintf("number %s is out of range", truncateASCII(literal, 40))}
		}
		return FloatValue(f), idx, nil
	}
	digits := strings.TrimPrefix(literal, "-")
	if len(digits) > 4300 {
		return nil, 0, &jsonError{fmt.Sprintf("Exceeds the limit (4300 digits) for integer string "+
			"conversion: value has %d digits; use sys.set_int_max_str_digits() to increase the limit",
			len(digits))}
	}
	if digits == "0" {
		literal = "0" // Python's int("-0") is 0
	}
	return &Value{Kind: KindInt, Int: literal}, idx, nil
}

func isRangeError(err error) bool {
	numError, ok := err.(*strconv.NumError)
	return ok && numError.Err == strconv.ErrRange
}

func truncateASCII(s string, limit int) string {
	if len(s) > limit {
		return s[:limit]
	}
	return s
}

// scanString is scanstring_unicode (strict): end is the index after the opening quote.
func (sc *scanner) scanString(end int) ([]rune, int, error) {
	s, n := sc.s, len(sc.s)
	begin := end - 1
	var out []rune
	for {
		next := end
		var c rune
		for ; next < n; next++ {
			c = s[next]
			if c == '"' || c == '\\' {
				break
			}
			if c <= 0x1f {
				return nil, 0, sc.positioned("Invalid control character at", next)
			}
		}
		if next >= n || (c != '"' && c != '\\') {
			return nil, 0, sc.positioned("Unterminated string starting at", begin)
		}
		out = append(out, s[end:next]...)
		next++
		if c == '"' {
			if out == nil {
				out = []rune{}
			}
			return out, next, nil
		}
		if next == n {
			return nil, 0, sc.positioned("Unterminated string starting at", begin)
		}
		c = s[next]
		if c != 'u' {
			end = next + 1
			switch c {
			case '"', '\\', '/':
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			default:
				return nil, 0, sc.positioned("Invalid \\escape", end-2)
			}
			out = append(out, c)
			continue
		}
		next++
		end = next + 4
		if end >= n {
			return nil, 0, sc.positioned("Invalid \\uXXXX escape", next-1)
		}
		c, ok := hex4(s[next:end])
		if !ok {
			return nil, 0, sc.positioned("Invalid \\uXXXX escape", end-5)
		}
		next = end
		if c >= 0xd800 && c <= 0xdbff && end+6 < n && s[next] == '\\' && s[next+1] == 'u' {
			end += 6
			c2, ok := hex4(s[next+2 : end])
			if !ok {
				return nil, 0, sc.positioned("Invalid \\uXXXX escape", end-5)
			}
			if c2 >= 0xdc00 && c2 <= 0xdfff {
				c = 0x10000 + (c-0xd800)<<10 + (c2 - 0xdc00)
			} else {
				end -= 6
			}
		}
		out = append(out, c)
	}
}

func hex4(digits []rune) (rune, bool) {
	var c rune
	for _, d := range digits {
		c <<= 4
		switch {
		case d >= '0' && d <= '9':
			c |= d - '0'
		case d >= 'a' && d <= 'f':
			c |= d - 'a' + 10
		case d >= 'A' && d <= 'F':
			c |= d - 'A' + 10
		default:
			return 0, false
		}
	}
	return c, true
}

// parseObject is _parse_object_unicode: idx is the index after '{'.
func (sc *scanner) parseObject(idx int) (*Value, int, error) {
	s, end := sc.s, len(sc.s)-1
	d := NewDict()
	idx = sc.skip(idx)
	if idx > end || s[idx] != '}' {
		for {
			if idx > end || s[idx] != '"' {
				return nil, 0, sc.positioned("Expecting property name enclosed in double quotes", idx)
			}
			key, next, err := sc.scanString(idx + 1)
			if err != nil {
				return nil, 0, err
			}
			idx = sc.skip(next)
			if idx > end || s[idx] != ':' {
				return nil, 0, sc.positioned("Expecting ':' delimiter", idx)
			}
			idx = sc.skip(idx + 1)
			value, next, err := sc.scanOnce(idx)
			if err != nil {
				return nil, 0, err
			}
			d.Set(key, value)
			idx = sc.skip(next)
			if idx <= end && s[idx] == '}' {
				break
			}
			if idx > end || s[idx] != ',' {
				return nil, 0, sc.positioned("Expecting ',' delimiter", idx)
			}
			idx = sc.skip(idx + 1)
		}
	}
	return &Value{Kind: KindDict, Dict: d}, idx + 1, nil
}

// parseArray is _parse_array_unicode: idx is the index after '['.
func (sc *scanner) parseArray(idx int) (*Value, int, error) {
	s, end := sc.s, len(sc.s)-1
	items := []*Value{}
	idx = sc.skip(idx)
	if idx > end || s[idx] != ']' {
		for {
			value, next, err := sc.scanOnce(idx)
			if err != nil {
				return nil, 0, err
			}
			items = append(items, value)
			idx = sc.skip(next)
			if idx <= end && s[idx] == ']' {
				break
			}
			if idx > end || s[idx] != ',' {
				return nil, 0, sc.positioned("Expecting ',' delimiter", idx)
			}
			idx = sc.skip(idx + 1)
		}
	}
	return &Value{Kind: KindList, List: items}, idx + 1, nil
}

// decodeJSON is cni.py's decode_json: the C scanner on the text stripped of JSON whitespace;
// when that fails, json.JSONDecoder on the whole text says what is wrong.
func decodeJSON(text []rune) (*Value, error) {
	return decodeJSONAt(text, fastPathDepth, fallbackPathDepth)
}

func decodeJSONAt(text []rune, fastDepth, fallbackDepth int) (*Value, error) {
	first, last := 0, len(text)
	for first < last && isJSONSpace(text[first]) {
		first++
	}
	for last > first && isJSONSpace(text[last-1]) {
		last--
	}
	body := text[first:last]
	fast := &scanner{s: body, maxDepth: fastDepth}
	if value, end, err := fast.scanOnce(0); err == nil && end == len(body) {
		return value, nil
	}
	full := &scanner{s: text, maxDepth: fallbackDepth}
	value, end, err := full.scanOnce(full.skip(0))
	if stop, ok := err.(*stopIteration); ok {
		return nil, full.positioned("Expecting value", stop.idx)
	}
	if err != nil {
		return nil, err
	}
	if end = full.skip(end); end != len(text) {
		return nil, full.positioned("Extra data", end)
	}
	return value, nil
}

// --- encoding: cni.py's encode_json ---

// errTooDeep is the RecursionError the C encoder raises.
var errTooDeep = &jsonError{"maximum recursion depth exceeded while encoding a JSON object"}

// encodeJSON is cni.py's encode_json: compact ASCII JSON with ", " and ": ".
func encodeJSON(v *Value) (string, error) {
	var b strings.Builder
	if err := encodeValue(&b, v, 0); err != nil {
		return "", err
	}
	return b.String(), nil
}

func encodeValue(b *strings.Builder, v *Value, depth int) error {
	switch v.Kind {
	case KindNull:
		b.WriteString("null")
	case KindBool:
		if v.Bool {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case KindInt:
		b.WriteString(v.Int)
	case KindFloat:
		b.WriteString(reprFloat(v.Float))
	case KindStr:
		encodeString(b, v.Str)
	case KindList, KindDict:
		if depth+1 > encodeDepth {
			return errTooDeep
		}
		if v.Kind == KindList {
			b.WriteByte('[')
			for i, item := range v.List {
				if i > 0 {
					b.WriteString(", ")
				}
				if err := encodeValue(b, item, depth+1); err != nil {
					return err
				}
			}
			b.WriteByte(']')
			return nil
		}
		b.WriteByte('{')
		for i := 0; i < v.Dict.Len(); i++ {
			key, item := v.Dict.Item(i)
			if i > 0 {
				b.WriteString(", ")
			}
			encodeString(b, key)
			b.WriteString(": ")
			if err := encodeValue(b, item, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	}
	return nil
}

// encodeString is _json's encode_basestring_ascii.
func encodeString(b *strings.Builder, s []rune) {
	const hexDigits = "0123456789abcdef"
	unit := func(c rune) {
		b.WriteString(`\u`)
		b.WriteByte(hexDigits[c>>12&0xf])
		b.WriteByte(hexDigits[c>>8&0xf])
		b.WriteByte(hexDigits[c>>4&0xf])
		b.WriteByte(hexDigits[c&0xf])
	}
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '"':
			b.WriteString(`\"`)
		case c >= ' ' && c <= '~':
			b.WriteByte(byte(c))
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\f':
			b.WriteString(`\f`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c >= 0x10000:
			c -= 0x10000
			unit(0xd800 | (c>>10)&0x3ff)
			unit(0xdc00 | c&0x3ff)
		default:
			unit(c)
		}
	}
	b.WriteByte('"')
}

// --- repr ---

// Repr is Python's repr of the value.
func (v *Value) Repr() []rune {
	var out []rune
	v.appendRepr(&out)
	return out
}

func (v *Value) appendRepr(out *[]rune) {
	switch v.Kind {
	case KindNull:
		*out = append(*out, []rune("None")...)
	case KindBool:
		if v.Bool {
			*out = append(*out, []rune("True")...)
		} else {
			*out = append(*out, []rune("False")...)
		}
	case KindInt:
		*out = append(*out, []rune(v.Int)...)
	case KindFloat:
		*out = append(*out, []rune(reprFloat(v.Float))...)
	case KindStr:
		*out = append(*out, reprStr(v.Str)...)
	case KindList:
		*out = append(*out, '[')
		for i, item := range v.List {
			if i > 0 {
				*out = append(*out, ',', ' ')
			}
			item.appendRepr(out)
		}
		*out = append(*out, ']')
	case KindDict:
		*out = append(*out, '{')
		for i := 0; i < v.Dict.Len(); i++ {
			key, item := v.Dict.Item(i)
			if i > 0 {
				*out = append(*out, ',', ' ')
			}
			*out = append(*out, reprStr(key)...)
			*out = append(*out, ':', ' ')
			item.appendRepr(out)
		}
		*out = append(*out, '}')
	}
}

// shown is cni.py's _shown: repr, cut at limit characters with "...".
func shown(v *Value, limit int) string {
	var text []rune
	if v == nil {
		text = []rune("None")
	} else {
		text = v.Repr()
	}
	return shownText(text, limit)
}

func shownText(text []rune, limit int) string {
	if len(text) <= limit {
		return pyString(text)
	}
	return pyString(text[:limit]) + "..."
}

// pyString carries a Python str as a Go string without losing lone surrogates (WTF-8); the
// encoder and the log writer turn it back into runes.
func pyString(s []rune) string { return runesKey(s) }
