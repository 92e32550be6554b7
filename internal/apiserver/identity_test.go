package apiserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/atoll-mesh/atoll/internal/version"
)

// GET /identity names the plane and, on a zone, its name, in camelCase
// JSON; the global's answer has no zone key.
func TestIdentity(t *testing.T) {
	for _, c := range []struct {
		id   Identity
		want map[string]string
	}{
		{Identity{Kind: KindGlobal}, map[string]string{"kind": "global", "version": version.Version, "commit": version.Commit}},
		{Identity{Kind: KindZone, Zone: "zone-1"}, map[string]string{"kind": "zone", "zone": "zone-1", "version": version.Version, "commit": version.Commit}},
	} {
		mux := http.NewServeMux()
		RegisterIdentity(mux, c.id)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", "/identity", nil))
		var got map[string]string
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != http.StatusOK {
			t.Fatalf("%d %s: %v", w.Code, w.Body, err)
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: got %v, want %v", c.id.Kind, got, c.want)
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s: %q is %q, want %q (%s)", c.id.Kind, k, got[k], v, w.Body)
			}
		}
	}
}
