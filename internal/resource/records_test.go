package resource

import (
	"strings"
	"testing"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
)

// Record names are valid resource names, stable, and differ whenever what
// they name differs (zone, mesh, tags, port; service).
func TestRecordNames(t *testing.T) {
	base := ZoneServiceName("zone-1", "default", map[string]string{ServiceTag: "backend", "version": "v1"}, 8080)
	if msg := CheckName(base); msg != "" {
		t.Fatalf("ZoneServiceName %q: %s", base, msg)
	}
	if again := ZoneServiceName("zone-1", "default", map[string]string{"version": "v1", ServiceTag: "backend"}, 8080); again != base {
		t.Fatalf("the same service named %q and %q", base, again)
	}
	for _, other := range []string{
		ZoneServiceName("zone-2", "default", map[string]string{ServiceTag: "backend", "version": "v1"}, 8080),
		ZoneServiceName("zone-1", "other", map[string]string{ServiceTag: "backend", "version": "v1"}, 8080),
		ZoneServiceName("zone-1", "default", map[string]string{ServiceTag: "backend", "version": "v2"}, 8080),
		ZoneServiceName("zone-1", "default", map[string]string{ServiceTag: "backend"}, 8080),
		ZoneServiceName("zone-1", "default", map[string]string{ServiceTag: "backend", "version": "v1"}, 8081),
		// Separators cannot be forged by moving text between fields.
		ZoneServiceName("zone-1\x00default", "", map[string]string{ServiceTag: "backend", "version": "v1"}, 8080),
	} {
		if other == base {
			t.Errorf("different services share the name %q", base)
		}
	}
	v := VIPRecordName("backend_default_svc_8080")
	if msg := CheckName(v); msg != "" {
		t.Fatalf("VIPRecordName %q: %s", v, msg)
	}
	if v == VIPRecordName("backend") || v != VIPRecordName("backend_default_svc_8080") {
		t.Fatalf("VIPRecordName is not a stable name per service: %q", v)
	}
	if TagKey(map[string]string{"a": "b=c"}) == TagKey(map[string]string{"a=b": "c"}) {
		t.Errorf("TagKey encodes different tag sets alike")
	}
}

// A VIPTable is either a mesh's legacy table (any number of entries) or a
// service's record: one entry, named after that service.
func TestVIPRecordValidation(t *testing.T) {
	entry := func(service, vip string) *v1alpha1.VIPTable_Entry {
		return &v1alpha1.VIPTable_Entry{Service: service, Vip: vip}
	}
	table := func(name string, entries ...*v1alpha1.VIPTable_Entry) *Resource {
		return &Resource{Meta: Meta{Type: VIPTableType, Mesh: DefaultMesh, Name: name}, Spec: &v1alpha1.VIPTable{Entries: entries}}
	}
	for name, tc := range map[string]struct {
		r    *Resource
		want string // "" when valid
	}{
		"service record":        {table(VIPRecordName("backend"), entry("backend", "240.0.0.1")), ""},
		"legacy, several":       {table(VIPTableName, entry("backend", "240.0.0.1"), entry("web", "240.0.0.2")), ""},
		"legacy, empty":         {table(VIPTableName), ""},
		"record of another":     {table(VIPRecordName("backend"), entry("web", "240.0.0.2")), `named "` + VIPRecordName("web") + `"`},
		"record, two entries":   {table(VIPRecordName("backend"), entry("backend", "240.0.0.1"), entry("web", "240.0.0.2")), "exactly one entry, has 2"},
		"record, no entry":      {table(VIPRecordName("backend")), "exactly one entry, has 0"},
		"any other name":        {table("backend", entry("backend", "240.0.0.1")), `named "` + VIPRecordName("backend") + `"`},
		"record, bad address":   {table(VIPRecordName("backend"), entry("backend", "nope")), "is not an IP address"},
		"legacy, duplicate VIP": {table(VIPTableName, entry("backend", "240.0.0.1"), entry("web", "240.0.0.1")), "already the VIP of entries[0]"},
	} {
		t.Run(name, func(t *testing.T) {
			err := Validate(tc.r)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// A zone may not take the name of a per-service record; other names are
// checked as any resource's.
func TestCheckZoneName(t *testing.T) {
	for name, ok := range map[string]bool{
		"zone-1": true, "zs-1": true, "zs-0123456789abcdeg": true, "zs-0123456789abcdef0": true,
		ZoneServiceName("zone-1", "default", nil, 80): false, "zs-0123456789abcdef": false, "Zone_1": false, "": false,
	} {
		if msg := CheckZoneName(name); (msg == "") != ok {
			t.Errorf("CheckZoneName(%q) = %q, want ok %t", name, msg, ok)
		}
	}
}
