package kubernetes_test

import (
	"strings"
	"testing"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

func TestDataplaneName(t *testing.T) {
	long63 := strings.Repeat("n", 63)
	pairs := [][2]string{ // namespace, pod
		{"kong", "kong-0"},
		{"c", "a-b"}, {"b-c", "a"}, // "<pod>-<namespace>" alone is a-b-c for both
		{"shop", "web.v1"}, {"shop", "web-v1"}, // dots become '-'
		{long63, "web-1"}, {long63, "web-2"}, // cut to the same readable part
		{"shop", strings.Repeat("p", 253)}, {"shop", strings.Repeat("p", 252)},
		{"shop", strings.Repeat("a.", 126) + "b"},
		{"x", "-"}, {"x", "."}, // not valid pod names, still a valid Dataplane name
	}
	seen := map[string][2]string{}
	for _, p := range pairs {
		name := kubernetes.DataplaneName(p[0], p[1])
		if msg := resource.CheckName(name); msg != "" {
			t.Errorf("DataplaneName(%q, %q) = %q: %s", p[0], p[1], name, msg)
		}
		if other, dup := seen[name]; dup {
			t.Errorf("pod %q in %q and pod %q in %q are both %q", p[1], p[0], other[1], other[0], name)
		}
		seen[name] = p
		if again := kubernetes.DataplaneName(p[0], p[1]); again != name {
			t.Errorf("DataplaneName(%q, %q) is %q, then %q", p[0], p[1], name, again)
		}
	}
	got := kubernetes.DataplaneName("kong", "kong-0")
	if !strings.HasPrefix(got, "kong-0-kong-") || len(got) != len("kong-0-kong-")+8 {
		t.Errorf(`DataplaneName("kong", "kong-0") = %q, want kong-0-kong-<8 characters>`, got)
	}
	if got := kubernetes.DataplaneName("shop", "web.v1"); !strings.HasPrefix(got, "web-v1-shop-") {
		t.Errorf(`DataplaneName("shop", "web.v1") = %q, want web-v1-shop-<hash>`, got)
	}
}

func FuzzDataplaneName(f *testing.F) {
	f.Add("kong", "kong-0", "kong", "kong-1")
	f.Add("c", "a-b", "b-c", "a")
	f.Fuzz(func(t *testing.T, ns1, pod1, ns2, pod2 string) {
		a, b := kubernetes.DataplaneName(ns1, pod1), kubernetes.DataplaneName(ns2, pod2)
		if msg := resource.CheckName(a); msg != "" {
			t.Fatalf("DataplaneName(%q, %q) = %q: %s", ns1, pod1, a, msg)
		}
		if a == b && ns1+"/"+pod1 != ns2+"/"+pod2 {
			t.Fatalf("%q/%q and %q/%q are both %q", ns1, pod1, ns2, pod2, a)
		}
	})
}
