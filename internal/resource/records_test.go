package resource

import "testing"

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
