package naming_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/atoll-mesh/atoll/internal/naming"
)

func TestCheckService(t *testing.T) {
	long := strings.Repeat("a", 63)
	cases := []struct {
		in   string
		want string // a part of the message; "" means valid
	}{
		{"backend", ""},
		{"b", ""},
		{"backend-v2", ""},
		{"backend_v2", ""},
		{"0backend9", ""},
		{long, ""},
		{"backend_default_svc_80", ""},
		{"backend_default_svc_65535", ""},
		// The Kubernetes form may be longer than one label.
		{long + "_" + long + "_svc_8080", ""},
		{"", "is empty"},
		{"Backend", `upper-case letters: service names are lowercase because DNS names ignore case (use "backend")`},
		{"BACKEND_default_svc_80", "upper-case"},
		{"backend.v2", `has dots: a service name is one DNS label, use '-' or '_' instead (e.g. "backend-v2")`},
		{"a.b.svc.80", "has dots"},
		{long + "a", "is 64 characters long: use at most 63"},
		{"-backend", "starting and ending with a letter or digit"},
		{"backend_", "starting and ending with a letter or digit"},
		{"back end", "use lowercase letters, digits, '-' and '_'"},
		{"back/end", "use lowercase letters"},
		{"bäckend", "use lowercase letters"},
		// Not the Kubernetes form: then one label, at most 63 characters.
		{long + "_" + long + "_svc_0", "characters long"},
		{long + "_" + long + "_svc_65536", "characters long"},
		{long + "_" + long + "_svc_080", "characters long"},
		{long + "a_ns_svc_80", "characters long"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got := naming.CheckService(c.in)
			switch {
			case c.want == "" && got != "":
				t.Errorf("CheckService(%q) = %q, want valid", c.in, got)
			case c.want != "" && !strings.Contains(got, c.want):
				t.Errorf("CheckService(%q) = %q, want a message with %q", c.in, got, c.want)
			}
		})
	}
}

func TestDNSNames(t *testing.T) {
	cases := map[string]string{
		"backend":                "[backend]",
		"Backend":                "[backend]",
		"backend_default_svc_80": "[backend_default_svc_80 backend.default.svc.80]",
		"Backend_Default_svc_80": "[backend_default_svc_80 backend.default.svc.80]",
		"a_b_svc_x":              "[a_b_svc_x]",
		"a_b_c_80":               "[a_b_c_80]",
		"a.b.svc.80":             "[a.b.svc.80]",
	}
	for in, want := range cases {
		if got := fmt.Sprint(naming.DNSNames(in)); got != want {
			t.Errorf("DNSNames(%q) = %s, want %s", in, got, want)
		}
	}
}

// Valid service names never share a DNS name, and every spelling that
// maps to a valid name's DNS name but is not that name is refused.
func TestValidNamesMapOneToOne(t *testing.T) {
	names := []string{"backend", "a_b_svc_80", "a_b_svc_8080", "a-b_c_svc_80", "a_b-c_svc_80", "a_b_svc_080", "svc", "a_b"}
	owner := map[string]string{}
	for _, s := range names {
		if msg := naming.CheckService(s); msg != "" {
			t.Fatalf("%q: %s", s, msg)
		}
		for _, n := range naming.DNSNames(s) {
			if o, dup := owner[n]; dup {
				t.Errorf("%q and %q both map to %s", o, s, n)
			}
			owner[n] = s
		}
	}
	for _, s := range []string{"Backend", "BACKEND", "a.b.svc.80", "A_B_svc_80", "a_b_svc_80.", "a_b.svc.80"} {
		if naming.CheckService(s) == "" {
			t.Errorf("%q is accepted but maps to %v", s, naming.DNSNames(s))
		}
	}
}

func FuzzValidNamesMapOneToOne(f *testing.F) {
	f.Add("backend", "Backend")
	f.Add("a_b_svc_80", "a.b.svc.80")
	f.Add("a_b_svc_80", "a_b_svc_080")
	f.Fuzz(func(t *testing.T, a, b string) {
		if a == b || naming.CheckService(a) != "" || naming.CheckService(b) != "" {
			return
		}
		for _, x := range naming.DNSNames(a) {
			for _, y := range naming.DNSNames(b) {
				if x == y {
					t.Fatalf("valid names %q and %q both map to %s", a, b, x)
				}
			}
		}
	})
}

func TestServicePort(t *testing.T) {
	for _, tt := range []struct {
		service string
		port    uint32
		want    uint32
	}{
		{"backend_default_svc_80", 8080, 80},
		{"backend_default_svc_80", 80, 80},
		{"web_shop_svc_65535", 1, 65535},
		{"backend", 9001, 9001},
		{"backend_v2", 9001, 9001},
		{"a_b_svc_x", 9001, 9001},            // not the Kubernetes form
		{"a_b_svc_0", 9001, 9001},            // no port 0
		{"a_b_svc_70000", 9001, 9001},        // out of range
		{"a_b_c_svc_80", 9001, 9001},         // five parts
		{"Backend_Default_svc_80", 8080, 80}, // stored before the rule: still the Service's port
	} {
		if got := naming.ServicePort(tt.service, tt.port); got != tt.want {
			t.Errorf("naming.ServicePort(%q, %d) = %d, want %d", tt.service, tt.port, got, tt.want)
		}
	}
}
