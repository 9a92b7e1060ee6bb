// Python's ipaddress.ip_interface(text).ip, as cni.py's spooled_ips uses it: the same inputs
// accepted (dotted netmasks and hostmasks, IPv6 scope ids, IPv4-suffixed IPv6) and the same
// text out (compressed IPv6 as Python 3.11 writes it, scope dropped).

package main

import (
	"fmt"
	"strconv"
	"strings"
)

func isASCIIDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseIPv4 is IPv4Address._ip_int_from_string.
func parseIPv4(s string) (uint32, bool) {
	octets := strings.Split(s, ".")
	if s == "" || len(octets) != 4 {
		return 0, false
	}
	var value uint32
	for _, octet := range octets {
		if !isASCIIDigits(octet) || len(octet) > 3 || (octet != "0" && octet[0] == '0') {
			return 0, false
		}
		n, _ := strconv.Atoi(octet)
		if n > 255 {
			return 0, false
		}
		value = value<<8 | uint32(n)
	}
	return value, true
}

// prefixFromString is _prefix_from_prefix_string: ASCII digits, 0..max.
func prefixFromString(s string, max int) bool {
	if !isASCIIDigits(s) {
		return false
	}
	trimmed := strings.TrimLeft(s, "0")
	if len(trimmed) > 3 {
		return false
	}
	n, _ := strconv.Atoi("0" + trimmed)
	return n <= max
}

// isPrefixMask: ip is /1*0*/ as a bit string.
func isPrefixMask(ip uint32) bool {
	inverted := ^ip
	return inverted&(inverted+1) == 0
}

// ipv4Netmask is IPv4Network._make_netmask for a string: a prefix length, a netmask or a
// hostmask.
func ipv4Netmask(s string) bool {
	if prefixFromString(s, 32) {
		return true
	}
	ip, ok := parseIPv4(s)
	return ok && (isPrefixMask(ip) || isPrefixMask(^ip))
}

// parseHextet is _parse_hextet.
func parseHextet(s string) (uint16, bool) {
	if len(s) == 0 || len(s) > 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 16, 16)
	return uint16(n), err == nil
}

// parseIPv6 is IPv6Address's parsing (scope id split off, '/' refused); the 8 hextets.
func parseIPv6(s string) ([8]uint16, bool) {
	var out [8]uint16
	if strings.Contains(s, "/") {
		return out, false
	}
	if address, scope, found := strings.Cut(s, "%"); found {
		if scope == "" || strings.Contains(scope, "%") {
			return out, false
		}
		s = address
	}
	if s == "" {
		return out, false
	}
	parts := strings.Split(s, ":")
	if len(parts) < 3 {
		return out, false
	}
	if strings.Contains(parts[len(parts)-1], ".") {
		ipv4, ok := parseIPv4(parts[len(parts)-1])
		if !ok {
			return out, false
		}
		parts = append(parts[:len(parts)-1], fmt.Sprintf("%x", ipv4>>16), fmt.Sprintf("%x", ipv4&0xffff))
	}
	if len(parts) > 9 {
		return out, false
	}
	skip := -1
	for i := 1; i < len(parts)-1; i++ {
		if parts[i] == "" {
			if skip >= 0 {
				return out, false
			}
			skip = i
		}
	}
	var hi, lo int
	if skip >= 0 {
		hi, lo = skip, len(parts)-skip-1
		if parts[0] == "" {
			if hi--; hi != 0 {
				return out, false
			}
		}
		if parts[len(parts)-1] == "" {
			if lo--; lo != 0 {
				return out, false
			}
		}
		if 8-(hi+lo) < 1 {
			return out, false
		}
	} else {
		if len(parts) != 8 || parts[0] == "" || parts[len(parts)-1] == "" {
			return out, false
		}
		hi, lo = 8, 0
	}
	for i := 0; i < hi; i++ {
		h, ok := parseHextet(parts[i])
		if !ok {
			return out, false
		}
		out[i] = h
	}
	for i := 0; i < lo; i++ {
		h, ok := parseHextet(parts[len(parts)-lo+i])
		if !ok {
			return out, false
		}
		out[8-lo+i] = h
	}
	return out, true
}

// formatIPv6 is str(IPv6Address) in Python 3.11: the longest run (of two or more) of zero
// hextets, the first if tied, as "::".
func formatIPv6(h [8]uint16) string {
	bestStart, bestLen, start, length := -1, 0, -1, 0
	for i, v := range h {
		if v == 0 {
			length++
			if start < 0 {
				start = i
			}
			if length > bestLen {
				bestStart, bestLen = start, length
			}
		} else {
			start, length = -1, 0
		}
	}
	parts := make([]string, 8)
	for i, v := range h {
		parts[i] = fmt.Sprintf("%x", v)
	}
	if bestLen > 1 {
		head := strings.Join(parts[:bestStart], ":")
		tail := strings.Join(parts[bestStart+bestLen:], ":")
		return head + "::" + tail
	}
	return strings.Join(parts, ":")
}

// interfaceIP is str(ipaddress.ip_interface(text).ip); ok is false where Python raises
// ValueError.
func interfaceIP(text string) (string, bool) {
	parts := strings.Split(text, "/")
	if len(parts) > 2 {
		return "", false
	}
	address := parts[0]
	if ip, ok := parseIPv4(address); ok && (len(parts) == 1 || ipv4Netmask(parts[1])) {
		return fmt.Sprintf("%d.%d.%d.%d", ip>>24, ip>>16&0xff, ip>>8&0xff, ip&0xff), true
	}
	if hextets, ok := parseIPv6(address); ok && (len(parts) == 1 || prefixFromString(parts[1], 128)) {
		return formatIPv6(hextets), true
	}
	return "", false
}
