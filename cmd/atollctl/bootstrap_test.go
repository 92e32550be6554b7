package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// bootstrap --token-file asks the zone for a bootstrap that presents the
// token file, and is refused where it cannot work, before any request.
func TestBootstrapTokenFile(t *testing.T) {
	var asked []string
	zone := httptest.NewServer(fakePlane(planeZone, "zone-1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.RequestURI())
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	})))
	defer zone.Close()
	run := func(args ...string) error {
		root := rootCommand()
		root.SetArgs(append([]string{"--api-url", zone.URL, "bootstrap", "dataplane", "kong-0"}, args...))
		root.SetOut(&bytes.Buffer{})
		return root.Execute()
	}
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--token-file", "/var/run/secrets/atoll/token"}, "--token-file is for --kind proxyless"},
		{[]string{"--kind", "proxyless", "--token-file", "token"}, `--token-file "token": give the absolute path`},
	} {
		if err := run(c.args...); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("bootstrap %v: %v, want an error saying %q", c.args, err, c.says)
		}
	}
	if len(asked) != 0 {
		t.Fatalf("refused commands made requests: %v", asked)
	}
	if err := run("--kind", "proxyless", "--token-file", "/var/run/secrets/atoll/token"); err != nil {
		t.Fatal(err)
	}
	if len(asked) != 1 || !strings.Contains(asked[0], "token-file=%2Fvar%2Frun%2Fsecrets%2Fatoll%2Ftoken") || !strings.Contains(asked[0], "kind=proxyless") {
		t.Errorf("the zone was asked %v", asked)
	}
}
