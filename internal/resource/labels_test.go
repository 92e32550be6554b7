package resource_test

import (
	"strings"
	"testing"

	"github.com/atoll-mesh/atoll/internal/resource"
)

func TestCheckLabel(t *testing.T) {
	cases := []struct{ key, value, want string }{
		{"app", "kong", ""},
		{"app.kubernetes.io/name", "kong", ""},
		{"version", "v1.2_3", ""},
		{"app", "", "value is empty"},
		{"app", "-kong", "value \"-kong\" is invalid"},
		{"Example.com/app", "kong", "key prefix \"Example.com\" is invalid"},
		{"/app", "kong", "key prefix \"\" is invalid"},
		{"a b", "kong", "key \"a b\" is invalid"},
		{strings.Repeat("a", 64), "kong", "is invalid"},
	}
	for _, c := range cases {
		got := resource.CheckLabel(c.key, c.value)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("CheckLabel(%q, %q) = %q, want %q", c.key, c.value, got, c.want)
		}
	}
}
