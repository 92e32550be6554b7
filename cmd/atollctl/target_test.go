package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNormalizeURL(t *testing.T) {
	for _, c := range []struct {
		in, want, hint, err string
	}{
		{"http://127.0.0.1:5691", "http://127.0.0.1:5691", "", ""},
		{"https://global.example:5681/", "https://global.example:5681", "", ""},
		{"https://proxy.example/atoll/", "https://proxy.example/atoll", "", ""},
		{"127.0.0.1:5691", "http://127.0.0.1:5691", `--api-url "127.0.0.1:5691" has no scheme: using http://127.0.0.1:5691 (write https:// for an API served over TLS)`, ""},
		{"localhost:5691", "http://localhost:5691", "using http://localhost:5691", ""},
		{"[::1]:5691", "http://[::1]:5691", "using http://[::1]:5691", ""},
		{"", "", "", "--api-url is empty: give the API's URL, e.g. http://127.0.0.1:5681"},
		{"ftp://127.0.0.1:5691", "", "", `--api-url "ftp://127.0.0.1:5691": the scheme must be http:// or https://`},
		{"http://", "", "", `--api-url "http://" names no host: give it as http://HOST:PORT`},
		{"http://127.0.0.1:70000", "", "", "port 70000 is out of range: use 1-65535"},
		{"127.0.0.1:port", "", "", `--api-url "127.0.0.1:port" is not a URL`},
		{"http://admin:secret@127.0.0.1:5681", "", "", "holds a user name or password: drop it, and send the API token with --api-token-file"},
		{"http://127.0.0.1:5681/?x=1", "", "", "has a query or fragment"},
	} {
		got, hint, err := normalizeURL(c.in, "--api-url")
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: %q, %v; want an error saying %q", c.in, got, err, c.err)
		case c.err == "" && (err != nil || got != c.want || !strings.Contains(hint, c.hint) || (c.hint == "") != (hint == "")):
			t.Errorf("%q: %q, hint %q, %v; want %q, hint %q", c.in, got, hint, err, c.want, c.hint)
		}
	}
}

// Each setting comes from its flag, else its variable, else the context's
// (--context's, else the current one's), else the default; a context's
// files go with its URL only.
func TestResolveTargetPrecedence(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "config.yaml")
	write := func(text string) {
		if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const file = `currentContext: zone-1
contexts:
  - name: zone-1
    apiUrl: https://zone-1.example:5691
    apiCaFile: /ctx/zone-1-ca.pem
    apiTokenFile: /ctx/zone-1-token
  - name: global
    apiUrl: http://127.0.0.1:5681
`
	type want struct{ url, urlFrom, ca, tokenFile, token, err string }
	cases := []struct {
		name  string
		file  string
		flags apiFlags
		env   map[string]string
		want  want
	}{
		{"nothing: the default", "", apiFlags{}, nil,
			want{url: "http://127.0.0.1:5681", urlFrom: "the default --api-url"}},
		{"no current context: the default", "contexts: [{name: a, apiUrl: 'http://10.0.0.1:1'}]\n", apiFlags{}, nil,
			want{url: "http://127.0.0.1:5681", urlFrom: "the default --api-url"}},
		{"the current context, with its files", file, apiFlags{}, nil,
			want{url: "https://zone-1.example:5691", urlFrom: `context "zone-1"`, ca: "/ctx/zone-1-ca.pem", tokenFile: "/ctx/zone-1-token"}},
		{"ATOLL_API_URL before the current context, without its files", file, apiFlags{}, map[string]string{"ATOLL_API_URL": "http://127.0.0.1:5701"},
			want{url: "http://127.0.0.1:5701", urlFrom: "ATOLL_API_URL"}},
		{"--api-url before ATOLL_API_URL", file, apiFlags{url: "http://127.0.0.1:5711"}, map[string]string{"ATOLL_API_URL": "http://127.0.0.1:5701"},
			want{url: "http://127.0.0.1:5711", urlFrom: "--api-url"}},
		{"--context before ATOLL_API_URL", file, apiFlags{context: "global"}, map[string]string{"ATOLL_API_URL": "http://127.0.0.1:5701"},
			want{url: "http://127.0.0.1:5681", urlFrom: `context "global"`}},
		{"--context and --api-url", file, apiFlags{context: "global", url: "http://127.0.0.1:5711"}, nil,
			want{err: "--api-url and --context both name the API: give one of them"}},
		{"an unknown --context", file, apiFlags{context: "zone-7"}, nil,
			want{err: `--context "zone-7": no such context in ` + config + ": create it with atollctl config set-context zone-7 --api-url URL, or use one of: zone-1, global"}},
		{"flags before the context's files", file, apiFlags{caFile: "/flag/ca.pem", tokenFile: "/flag/token"}, nil,
			want{url: "https://zone-1.example:5691", urlFrom: `context "zone-1"`, ca: "/flag/ca.pem", tokenFile: "/flag/token"}},
		{"variables before the context's files", file, apiFlags{}, map[string]string{"ATOLL_API_CA_FILE": "/env/ca.pem", "ATOLL_API_TOKEN_FILE": "/env/token"},
			want{url: "https://zone-1.example:5691", urlFrom: `context "zone-1"`, tokenFile: "/env/token"}},
		{"ATOLL_API_TOKEN before the context's token file", file, apiFlags{}, map[string]string{"ATOLL_API_TOKEN": "s3cret"},
			want{url: "https://zone-1.example:5691", urlFrom: `context "zone-1"`, ca: "/ctx/zone-1-ca.pem", token: "s3cret"}},
		{"a URL without a scheme", "", apiFlags{url: "127.0.0.1:5691"}, nil,
			want{url: "http://127.0.0.1:5691", urlFrom: "--api-url"}},
		{"a broken config file", "contexts: [\n", apiFlags{}, nil,
			want{err: "atollctl's config " + config + ": yaml: line 1"}},
		{"a broken config file is not read for --api-url", "contexts: [\n", apiFlags{url: "http://127.0.0.1:5691"}, nil,
			want{url: "http://127.0.0.1:5691", urlFrom: "--api-url"}},
		{"a broken config file is not read for ATOLL_API_URL", "contexts: [\n", apiFlags{}, map[string]string{"ATOLL_API_URL": "http://127.0.0.1:5691"},
			want{url: "http://127.0.0.1:5691", urlFrom: "ATOLL_API_URL"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			os.Remove(config)
			if c.file != "" {
				write(c.file)
			}
			env := map[string]string{configEnv: config}
			for k, v := range c.env {
				env[k] = v
			}
			got, err := resolveTarget(c.flags, func(k string) string { return env[k] })
			if c.want.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.want.err) {
					t.Fatalf("%+v, %v; want an error saying %q", got, err, c.want.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.url != c.want.url || got.urlFrom != c.want.urlFrom || got.caFile != c.want.ca || got.tokenFile != c.want.tokenFile || got.token != c.want.token {
				t.Errorf("got url %q from %q, CA %q, token file %q, token %q; want %+v", got.url, got.urlFrom, got.caFile, got.tokenFile, got.token, c.want)
			}
		})
	}
}
