// Package naming is the one rule for service names — the values of the
// atoll.io/service tag — and for the DNS names every zone answers for them.
//
// DNS names are case-insensitive, so the rule keeps the map from service
// names to DNS names one-to-one: no service can answer for another's name.
// A service name is either
//
//   - one DNS label: 1–63 lowercase letters, digits, '-' and '_', starting
//     and ending with a letter or digit ("backend", "backend_v2"). It is
//     answered as <service>.<domain>, e.g. backend.mesh; or
//   - the Kubernetes form <name>_<namespace>_svc_<port>, name and namespace
//     DNS-1123 labels (at most 63 characters each), port 1–65535 without
//     leading zeros ("backend_default_svc_80"). It is answered as
//     <name>.<namespace>.svc.<port>.<domain>, and also as
//     <service>.<domain> when it is at most 63 characters long.
//
// No upper case and no dots: "Backend" would be backend.mesh, and
// "a.b.svc.80" would be a_b_svc_80's Kubernetes name. Dataplanes are checked
// against the rule when they are written (REST API and KDS). Names stored
// before the rule still load and are answered under their lowercase
// spelling; where two services then map to one DNS name, the VIP allocator
// (internal/vip) decides which one keeps it.
//
//	if msg := naming.CheckService("Backend"); msg != "" { ... } // refused
//	naming.DNSNames("backend_default_svc_80") // [backend_default_svc_80 backend.default.svc.80]
package naming

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxLabel is the longest DNS label, and the longest single-label service name.
const MaxLabel = 63

// CheckService returns why s is not a valid service name, or "" when it is.
func CheckService(s string) string {
	if s == "" {
		return "is empty: name the service, e.g. backend"
	}
	if _, _, _, ok := kubernetesForm(s, true); ok {
		return ""
	}
	switch {
	case strings.ToLower(s) != s:
		return fmt.Sprintf("%q has upper-case letters: service names are lowercase because DNS names ignore case (use %q)", s, strings.ToLower(s))
	case strings.Contains(s, "."):
		return fmt.Sprintf("%q has dots: a service name is one DNS label, use '-' or '_' instead (e.g. %q)", s, strings.ReplaceAll(s, ".", "-"))
	case len(s) > MaxLabel:
		return fmt.Sprintf("%q is %d characters long: use at most %d, or the Kubernetes form <name>_<namespace>_svc_<port>", s, len(s), MaxLabel)
	case !isServiceLabel(s):
		return fmt.Sprintf("%q is invalid: use lowercase letters, digits, '-' and '_', starting and ending with a letter or digit", s)
	}
	return ""
}

// DNSNames returns the names, relative to the DNS domain and lowercase,
// that a service is answered as: the service itself and, for the
// Kubernetes form, <name>.<namespace>.svc.<port>. For names stored before
// the rule (upper case, dots) these are the names they map to, so a
// conflict with a valid name is seen.
func DNSNames(service string) []string {
	s := strings.ToLower(service)
	names := []string{s}
	if name, ns, port, ok := kubernetesForm(s, false); ok {
		names = append(names, name+"."+ns+".svc."+port)
	}
	return names
}

// ServicePort is the port clients reach service at, given the port of one
// of its instances (an inbound's port). For the Kubernetes form it is the
// Service's port the name carries — backend_default_svc_80 is reached at
// :80 wherever its pods listen (the Service's targetPort, which may differ
// per zone) — and otherwise the instance's port. Listeners, clusters,
// proxyless names and what zones offer one another are keyed by it;
// endpoints keep their instances' own ports.
func ServicePort(service string, instancePort uint32) uint32 {
	if _, _, port, ok := kubernetesForm(service, false); ok {
		if p, err := strconv.ParseUint(port, 10, 16); err == nil && p > 0 {
			return uint32(p)
		}
	}
	return instancePort
}

// kubernetesForm splits <name>_<namespace>_svc_<port>. strict checks name
// and namespace as DNS-1123 labels and the port as 1–65535 in canonical
// form; otherwise any non-empty parts and a run of digits are accepted,
// as DNS names were derived before the rule.
func kubernetesForm(s string, strict bool) (name, namespace, port string, ok bool) {
	parts := strings.Split(s, "_")
	if len(parts) != 4 || parts[2] != "svc" || parts[0] == "" || parts[1] == "" || !isDigits(parts[3]) {
		return "", "", "", false
	}
	if strict {
		p, err := strconv.Atoi(parts[3])
		if !isDNS1123Label(parts[0]) || !isDNS1123Label(parts[1]) || err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != parts[3] {
			return "", "", "", false
		}
	}
	return parts[0], parts[1], parts[3], true
}

func lowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// isServiceLabel: [a-z0-9]([-_a-z0-9]*[a-z0-9])?, at most 63 bytes.
func isServiceLabel(s string) bool {
	return label(s, func(c byte) bool { return lowerAlnum(c) || c == '-' || c == '_' })
}

// isDNS1123Label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 bytes.
func isDNS1123Label(s string) bool {
	return label(s, func(c byte) bool { return lowerAlnum(c) || c == '-' })
}

func label(s string, middle func(byte) bool) bool {
	if s == "" || len(s) > MaxLabel || !lowerAlnum(s[0]) || !lowerAlnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if !middle(s[i]) {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
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
