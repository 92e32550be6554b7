package kubernetes

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
)

// hashLen is the length of the name's hash suffix: 8 base32 characters,
// 40 bits.
const hashLen = 8

// maxReadable leaves room for '-' and the hash in a 63-character name.
const maxReadable = 63 - 1 - hashLen

var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// DataplaneName is the name of the Dataplane of pod in namespace:
// "<pod>-<namespace>-<hash>", where dots in the pod name (and any other
// character a DNS label may not hold) become '-', the
// readable part is cut to 54 characters, and hash is 8 base32 characters
// of SHA-256("<namespace>/<pod>").
//
// A Dataplane name is one DNS label (at most 63 characters, no dots: the
// global stores it as "<name>.<zone>"), while a pod name may be a
// 253-character DNS subdomain and "<pod>-<namespace>" alone is ambiguous
// (pod "a-b" in "c" and pod "a" in "b-c"). The hash is over the exact
// namespace and pod name, so two pods share a name only if their readable
// parts and 40-bit hashes both collide.
func DataplaneName(namespace, pod string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + pod))
	hash := lowerBase32.EncodeToString(sum[:])[:hashLen]
	readable := strings.Map(func(c rune) rune {
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' {
			return c
		}
		return '-'
	}, pod+"-"+namespace)
	if len(readable) > maxReadable {
		readable = readable[:maxReadable]
	}
	readable = strings.Trim(readable, "-")
	if readable == "" {
		return hash
	}
	return readable + "-" + hash
}
