package dns

import (
	"net/netip"
	"strings"

	"github.com/atoll-mesh/atoll/internal/naming"
)

// Table is an immutable set of records under one domain. Names are
// case-insensitive; they are stored lowercase and fully qualified.
type Table struct {
	domain  string // "mesh."
	records map[string]*entry
	// parents holds every name that has a record below it (empty
	// non-terminals), which answer NODATA, not NXDOMAIN.
	parents map[string]bool
}

type entry struct {
	v4, v6 []netip.Addr
}

// NewTable builds a table for domain from names relative to it
// ("backend" → backend.mesh.). Names that are not valid DNS names are
// skipped, as are addresses that are not valid.
func NewTable(domain string, names map[string][]netip.Addr) *Table {
	t := &Table{domain: fqdn(domain), records: map[string]*entry{}, parents: map[string]bool{}}
	for name, addrs := range names {
		full := fqdn(strings.ToLower(name) + "." + strings.TrimSuffix(t.domain, "."))
		if !validName(full) {
			continue
		}
		e := t.records[full]
		if e == nil {
			e = &entry{}
			t.records[full] = e
		}
		for _, a := range addrs {
			switch {
			case a.Is4():
				e.v4 = append(e.v4, a)
			case a.Is6():
				e.v6 = append(e.v6, a)
			}
		}
		for p := parent(full); p != "" && p != t.domain; p = parent(p) {
			t.parents[p] = true
		}
	}
	return t
}

// Len is the number of names.
func (t *Table) Len() int { return len(t.records) }

func fqdn(s string) string {
	s = strings.ToLower(strings.Trim(s, "."))
	return s + "."
}

func parent(name string) string {
	if i := strings.IndexByte(name, '.'); i >= 0 && i+1 < len(name) {
		return name[i+1:]
	}
	return ""
}

// validName accepts labels of 1–63 bytes of letters, digits, '-' and '_'
// (service names such as backend_default_svc_80 use '_'), 253 bytes in all.
func validName(name string) bool {
	if len(name) > 254 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if len(label) == 0 || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// ServiceNames returns the names a service is known by, relative to the
// domain, by the one rule in internal/naming: the service itself, and for
// a Kubernetes-style service <name>_<namespace>_svc_<port> also
// <name>.<namespace>.svc.<port>.
func ServiceNames(service string) []string { return naming.DNSNames(service) }
