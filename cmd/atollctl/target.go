package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// defaultAPIURL is the API atollctl talks to when nothing names one.
const defaultAPIURL = "http://127.0.0.1:5681"

// apiFlags are the API settings given on the command line, "" when not.
type apiFlags struct {
	url, caFile, tokenFile, context string
}

// apiTarget is the API a command talks to, and where each setting came
// from, for messages.
type apiTarget struct {
	url, urlFrom string
	// context is the context whose settings apply, if any.
	context string
	// caFile is the CA given by flag or context; envCAFile is
	// ATOLL_API_CA_FILE, which applies to https:// URLs only.
	caFile, caFrom, envCAFile string
	// tokenFile, else token, is sent.
	tokenFile, tokenFrom, token string
	// hint is a note for stderr (a URL given without a scheme).
	hint string
}

// resolveTarget picks each setting from its flag, else its environment
// variable, else the context's, else the default. The context is the one
// --context names, else the current one; its settings apply only when its
// URL does (--api-url or ATOLL_API_URL name another API, whose CA and
// token the context does not hold). The config file is read only when a
// context may apply.
func resolveTarget(f apiFlags, getenv func(string) string) (apiTarget, error) {
	t := apiTarget{envCAFile: getenv("ATOLL_API_CA_FILE"), token: getenv("ATOLL_API_TOKEN")}
	var ctx *apiContext
	switch {
	case f.url != "" && f.context != "":
		return t, fmt.Errorf("--api-url and --context both name the API: give one of them")
	case f.url != "":
		t.url, t.urlFrom = f.url, "--api-url"
	case f.context != "":
		cfg, path, err := readConfig(getenv)
		if err != nil {
			return t, err
		}
		if ctx = cfg.find(f.context); ctx == nil {
			return t, fmt.Errorf("--context %q: no such context in %s: create it with atollctl config set-context %s --api-url URL, or use one of: %s", f.context, path, f.context, listOrNone(cfg.names()))
		}
	case getenv("ATOLL_API_URL") != "":
		t.url, t.urlFrom = getenv("ATOLL_API_URL"), "ATOLL_API_URL"
	default:
		cfg, _, err := readConfig(getenv)
		if err != nil {
			return t, err
		}
		if cfg.CurrentContext != "" {
			ctx = cfg.find(cfg.CurrentContext)
		} else {
			t.url, t.urlFrom = defaultAPIURL, "the default --api-url"
		}
	}
	if ctx != nil {
		t.context = ctx.Name
		t.url, t.urlFrom = ctx.APIURL, fmt.Sprintf("context %q", ctx.Name)
	}
	u, hint, err := normalizeURL(t.url, t.urlFrom)
	if err != nil {
		return t, err
	}
	t.url, t.hint = u, hint

	t.caFile, t.caFrom = f.caFile, "--api-ca-file"
	if t.caFile == "" && ctx != nil && ctx.APICAFile != "" && !(t.envCAFile != "" && strings.HasPrefix(t.url, "https://")) {
		t.caFile, t.caFrom = ctx.APICAFile, fmt.Sprintf("the CA file of context %q", ctx.Name)
	}
	switch {
	case f.tokenFile != "":
		t.tokenFile, t.tokenFrom = f.tokenFile, "--api-token-file"
	case getenv("ATOLL_API_TOKEN_FILE") != "":
		t.tokenFile, t.tokenFrom = getenv("ATOLL_API_TOKEN_FILE"), "ATOLL_API_TOKEN_FILE"
	case t.token == "" && ctx != nil && ctx.APITokenFile != "":
		t.tokenFile, t.tokenFrom = ctx.APITokenFile, fmt.Sprintf("the token file of context %q", ctx.Name)
	}
	return t, nil
}

// readConfig loads the config file from where configPath says.
func readConfig(getenv func(string) string) (*ctlConfig, string, error) {
	path, err := configPath(getenv)
	if err != nil {
		return nil, "", err
	}
	cfg, err := loadConfig(path)
	return cfg, path, err
}

// normalizeURL checks an API URL given by from (a flag, a variable, a
// context) and returns it without a trailing slash. A URL without a scheme
// is taken as http://, with a hint saying so.
func normalizeURL(raw, from string) (string, string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", "", fmt.Errorf("%s is empty: give the API's URL, e.g. %s", from, defaultAPIURL)
	}
	hint := ""
	if !strings.Contains(s, "://") {
		hint = fmt.Sprintf("%s %q has no scheme: using http://%s (write https:// for an API served over TLS)", from, raw, s)
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("%s %q is not a URL (%w): give it as %s", from, raw, err, defaultAPIURL)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", "", fmt.Errorf("%s %q: the scheme must be http:// or https://, e.g. %s", from, raw, defaultAPIURL)
	case u.Hostname() == "":
		return "", "", fmt.Errorf("%s %q names no host: give it as http://HOST:PORT, e.g. %s", from, raw, defaultAPIURL)
	case u.Port() != "" && !validPort(u.Port()):
		return "", "", fmt.Errorf("%s %q: port %s is out of range: use 1-65535", from, raw, u.Port())
	case u.User != nil:
		return "", "", fmt.Errorf("%s %q holds a user name or password: drop it, and send the API token with --api-token-file", from, raw)
	case u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s, "?") || strings.HasSuffix(s, "#"):
		return "", "", fmt.Errorf("%s %q has a query or fragment: give the API's base URL only, e.g. %s", from, raw, defaultAPIURL)
	}
	return strings.TrimRight(u.String(), "/"), hint, nil
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none yet"
	}
	return strings.Join(names, ", ")
}
