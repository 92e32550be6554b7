package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The config file is written whole, readable by the user only, in a
// directory it creates; a hand-edited file with mistakes is refused naming
// the file and the mistake.
func TestConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "config.yaml")
	cfg, err := loadConfig(path)
	if err != nil || len(cfg.Contexts) != 0 {
		t.Fatalf("a missing file: %+v, %v; want an empty config", cfg, err)
	}
	cfg.Contexts = []apiContext{{Name: "zone-1", APIURL: "http://127.0.0.1:5691"}, {Name: "prod", APIURL: "https://g.example:5681", APICAFile: "/ca.pem", APITokenFile: "/token"}}
	cfg.CurrentContext = "prod"
	if err := cfg.save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	data, _ := os.ReadFile(path)
	for _, key := range []string{"currentContext: prod", "apiUrl: https://g.example:5681", "apiCaFile: /ca.pem", "apiTokenFile: /token"} {
		if !strings.Contains(string(data), key) {
			t.Errorf("saved file lacks %q:\n%s", key, data)
		}
	}
	back, err := loadConfig(path)
	if err != nil || back.CurrentContext != "prod" || len(back.Contexts) != 2 || *back.find("prod") != cfg.Contexts[1] {
		t.Fatalf("loaded %+v, %v; want what was saved", back, err)
	}

	for _, c := range []struct{ name, text, says string }{
		{"unknown field", "contexts:\n  - name: a\n    apiURL: http://x:1\n", `field apiURL not found`},
		{"two contexts of one name", "contexts: [{name: a, apiUrl: 'http://x:1'}, {name: a, apiUrl: 'http://x:2'}]\n", `contexts[1]: context "a" is defined twice: keep one`},
		{"a bad name", "contexts: [{name: 'zone 1', apiUrl: 'http://x:1'}]\n", `contexts[0]: context name "zone 1" is invalid: use letters, digits`},
		{"a URL without a scheme", "contexts: [{name: a, apiUrl: 'x:1'}]\n", `context "a" apiUrl "x:1" has no scheme: write http:// or https:// before it`},
		{"a URL with a bad scheme", "contexts: [{name: a, apiUrl: 'grpc://x:1'}]\n", `context "a" apiUrl "grpc://x:1": the scheme must be http:// or https://`},
		{"a missing current context", "currentContext: b\ncontexts: [{name: a, apiUrl: 'http://x:1'}]\n", `currentContext "b" is not among the contexts: atollctl config use-context NAME`},
		{"not YAML", "contexts: [\n", "fix it, or delete it and set the contexts again"},
	} {
		if err := os.WriteFile(path, []byte(c.text), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := loadConfig(path)
		if err == nil || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want an error naming %s and saying %q", c.name, err, path, c.says)
		}
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err := loadConfig(path); err != nil || len(cfg.Contexts) != 0 {
		t.Errorf("an empty file: %+v, %v; want an empty config", cfg, err)
	}
}

// The config commands, as a user runs them.
func TestConfigCommands(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "atoll", "config.yaml")
	t.Setenv(configEnv, path)
	t.Setenv("ATOLL_API_URL", "")
	t.Chdir(dir)
	os.WriteFile("token", []byte("s3cret\n"), 0o600)
	os.WriteFile("empty-token", nil, 0o600)
	os.WriteFile("ca.pem", []byte("not a certificate"), 0o600)

	steps := []struct {
		args           []string
		stdout, stderr string
		err            string
	}{
		{[]string{"config", "get-contexts"}, "No contexts in " + path + ": create one with atollctl config set-context NAME --api-url URL", "", ""},
		{[]string{"config", "current-context"}, "", "", "no current context in " + path + ": choose one with atollctl config use-context NAME (contexts: none yet)"},
		{[]string{"config", "set-context", "zone-1"}, "", "", `context "zone-1" is new: give its API with --api-url, e.g. atollctl config set-context zone-1 --api-url http://127.0.0.1:5691`},
		{[]string{"config", "set-context"}, "", "", "config set-context takes one argument, the context's name (got 0): e.g. atollctl config set-context zone-1 --api-url http://127.0.0.1:5691"},
		{[]string{"config", "set-context", "Zone 1", "--api-url", "http://x:1"}, "", "", `context name "Zone 1" is invalid`},
		{[]string{"config", "set-context", "zone-1", "--api-url", "ftp://x:1"}, "", "", `--api-url "ftp://x:1": the scheme must be http:// or https://`},
		{[]string{"config", "set-context", "zone-1", "--api-url", "127.0.0.1:5691", "--api-token-file", "token"},
			`context "zone-1" created (http://127.0.0.1:5691) in ` + path + "\nuse it with: atollctl config use-context zone-1 (or atollctl --context zone-1 COMMAND)",
			`atollctl: --api-url "127.0.0.1:5691" has no scheme: using http://127.0.0.1:5691`, ""},
		{[]string{"config", "set-context", "g", "--api-url", "http://127.0.0.1:5681", "--api-token-file", "missing"}, "", "", "--api-token-file: open " + filepath.Join(dir, "missing")},
		{[]string{"config", "set-context", "g", "--api-url", "http://127.0.0.1:5681", "--api-token-file", "empty-token"}, "", "", "--api-token-file: " + filepath.Join(dir, "empty-token") + " is empty"},
		{[]string{"config", "set-context", "g", "--api-url", "https://127.0.0.1:5681", "--api-ca-file", "ca.pem"}, "", "", "--api-ca-file: " + filepath.Join(dir, "ca.pem") + " holds no PEM certificate"},
		{[]string{"config", "set-context", "g", "--api-url", "http://127.0.0.1:5681"}, `context "g" created (http://127.0.0.1:5681) in ` + path + "\nuse it with: atollctl config use-context g (or atollctl --context g COMMAND)", "", ""},
		{[]string{"config", "use-context", "zone-7"}, "", "", `no context "zone-7" in ` + path + ": use one of: zone-1, g, or create it with atollctl config set-context zone-7 --api-url URL"},
		{[]string{"config", "use-context", "zone-1"}, `switched to context "zone-1" (http://127.0.0.1:5691)`, "", ""},
		{[]string{"config", "current-context"}, "zone-1", "", ""},
		{[]string{"config", "get-contexts"}, "CURRENT   NAME     API URL                 CA FILE   TOKEN FILE\n" +
			"*         zone-1   http://127.0.0.1:5691   -         " + filepath.Join(dir, "token") + "\n" +
			"          g        http://127.0.0.1:5681   -         -", "", ""},
		{[]string{"config", "set-context", "zone-1", "--api-url", "http://127.0.0.1:5692"}, `context "zone-1" modified (http://127.0.0.1:5692) in ` + path, "", ""},
		{[]string{"config", "delete-context", "zone-1"}, `context "zone-1" deleted` + "\nit was the current context: commands now use http://127.0.0.1:5681 unless --api-url or ATOLL_API_URL says otherwise; choose another with atollctl config use-context NAME", "", ""},
		{[]string{"config", "get-contexts"}, "CURRENT   NAME   API URL                 CA FILE   TOKEN FILE\n          g      http://127.0.0.1:5681   -         -", "", ""},
		{[]string{"config", "delete-context", "zone-1"}, "", "", `no context "zone-1"`},
	}
	for _, s := range steps {
		out, errOut, err := run(t, s.args...)
		switch {
		case s.err != "" && (err == nil || !strings.Contains(err.Error(), s.err)):
			t.Errorf("%v: %v, want an error saying %q", s.args, err, s.err)
		case s.err == "" && err != nil:
			t.Errorf("%v: %v", s.args, err)
		case strings.TrimSpace(out) != s.stdout && !(s.err != "" && out == ""):
			t.Errorf("%v printed\n%s\nwant\n%s", s.args, out, s.stdout)
		case !strings.Contains(errOut, s.stderr):
			t.Errorf("%v: stderr %q, want %q", s.args, errOut, s.stderr)
		}
	}
	// The token file is kept by path, never the token.
	data, err := os.ReadFile(path)
	if err != nil || strings.Contains(string(data), "s3cret") {
		t.Errorf("config file: %v\n%s", err, data)
	}
}

// use-context warns when ATOLL_API_URL will keep the context from being
// used; an empty --api-url is refused, not taken for the default.
func TestContextNotes(t *testing.T) {
	t.Setenv(configEnv, filepath.Join(t.TempDir(), "config.yaml"))
	t.Setenv("ATOLL_API_URL", "")
	if _, _, err := run(t, "config", "set-context", "zone-1", "--api-url", "http://127.0.0.1:5691"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ATOLL_API_URL", "http://127.0.0.1:5681")
	_, errOut, err := run(t, "config", "use-context", "zone-1")
	want := `atollctl: ATOLL_API_URL=http://127.0.0.1:5681 is set and comes before the current context: unset it to use "zone-1"`
	if err != nil || !strings.Contains(errOut, want) {
		t.Errorf("use-context with ATOLL_API_URL set: %v, stderr %q; want %q", err, errOut, want)
	}
	if _, _, err := run(t, "--api-url", "", "get", "meshes"); err == nil || err.Error() != "--api-url is empty: give the API's URL, e.g. http://127.0.0.1:5681" {
		t.Errorf("--api-url \"\": %v", err)
	}
}
