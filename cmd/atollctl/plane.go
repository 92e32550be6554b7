package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/version"
)

// Each control plane says what it is at GET /identity; atollctl asks once
// per command, and answers a command meant for the other plane with what to
// run instead.

// The kinds of control plane.
const (
	planeGlobal = "global"
	planeZone   = "zone"
)

// identity is what GET /identity answers.
type identity struct {
	Kind    string `json:"kind"`
	Zone    string `json:"zone"`
	Version string `json:"version"`
}

// identityPath is the control planes' identity endpoint.
const identityPath = "/identity"

// identify asks the control plane what it is, once per command, and fails
// when what answers is not an atoll control plane.
func (c *client) identify(ctx context.Context) (*identity, error) {
	if c.ident != nil {
		return c.ident, nil
	}
	data, status, _, err := c.roundTrip(ctx, http.MethodGet, identityPath, nil)
	if err != nil {
		return nil, err
	}
	var id identity
	switch {
	case status == http.StatusNotFound && olderAtoll(data):
		return nil, fmt.Errorf("%s answers like an atoll control plane without GET %s, older than this atollctl (%s): use an atollctl of the control plane's version, or upgrade the control plane", c.baseURL, identityPath, version.String())
	case status != http.StatusOK:
		return nil, c.notAtoll(fmt.Sprintf("%d %s: %s", status, http.StatusText(status), excerpt(data)))
	case json.Unmarshal(data, &id) != nil:
		return nil, c.notAtoll(fmt.Sprintf("200 OK, but not JSON: %s", excerpt(data)))
	case id.Kind == planeZone && id.Zone == "", id.Kind != planeZone && id.Kind != planeGlobal:
		return nil, c.notAtoll(fmt.Sprintf("200 OK, but no atoll identity: %s", excerpt(data)))
	}
	c.ident = &id
	return c.ident, nil
}

func (c *client) notAtoll(answer string) error {
	return fmt.Errorf("%s does not look like an atoll control plane (GET %s: %s): %s", c.baseURL, identityPath, answer, c.fixURL())
}

// olderAtoll says whether a 404 body is the resource API's answer to an
// unknown type, as atoll control planes without /identity give.
func olderAtoll(data []byte) bool {
	var ae apiError
	return json.Unmarshal(data, &ae) == nil && strings.HasPrefix(ae.Error, "no resource type is served at")
}

// fixURL says how to name another API, after where the URL came from.
func (c *client) fixURL() string {
	switch from := c.urlSource(); {
	case from == "ATOLL_API_URL":
		return "check ATOLL_API_URL, or give --api-url"
	case strings.HasPrefix(from, "context "):
		return fmt.Sprintf("check the API URL of %s (atollctl config get-contexts), or give --api-url", from)
	case from == "--api-url":
		return "check --api-url"
	default:
		return "give the control plane's API with --api-url, or set a context (atollctl config set-context)"
	}
}

// describe names the plane for messages: "the global", "zone zone-1".
func (id *identity) describe() string {
	if id.Kind == planeGlobal {
		return "the global"
	}
	return "zone " + id.Zone
}

// getPlane says which plane serves get ARG, and why: "" when both do.
func getPlane(arg string) (string, string) {
	switch arg {
	case "zones", "zone":
		return planeGlobal, "zones are listed by the global"
	case "zone-token-keys", "zone-token-key":
		return planeGlobal, "zone token keys are kept by the global"
	case "zoneinsights", "zoneinsight":
		return planeGlobal, "zone insights are kept by the global"
	case "services", "service", "svc":
		return planeZone, "services are served by a zone"
	case "proxies", "proxy":
		return planeZone, "proxies connect to a zone"
	}
	return "", ""
}

// writePlane says which plane users write resources of d on, and why: ""
// when neither (atoll computes them; the API says so).
func writePlane(d *resource.Descriptor) (string, string) {
	switch d.Writer {
	case resource.WrittenOnGlobal:
		return planeGlobal, d.Plural + " are managed on the global"
	case resource.WrittenOnZone:
		return planeZone, d.Plural + " are registered on a zone"
	}
	return "", ""
}

// need fails unless the control plane is of kind want; what says what the
// command needs of it ("services are served by a zone"). The error says
// what to run instead.
func (c *client) need(ctx context.Context, want, what string) error {
	id, err := c.identify(ctx)
	if err != nil || id.Kind == want {
		return err
	}
	// The hint costs a request; apply may need it for many resources.
	if c.hints == nil {
		c.hints = map[string]string{}
	}
	hint, ok := c.hints[want]
	if !ok {
		if want == planeZone {
			hint = fmt.Sprintf("%s is the global; try --api-url with a zone's API URL, e.g. http://127.0.0.1:5691 (zone-1 in the quick start)%s", c.baseURL, c.knownZones(ctx))
		} else {
			hint = fmt.Sprintf("%s is %s; try --api-url %s", c.baseURL, id.describe(), c.globalOf(ctx, id.Zone))
		}
		hint += c.otherContexts()
		c.hints[want] = hint
	}
	return fmt.Errorf("%s; %s", what, hint)
}

// otherContexts names the contexts to switch to, when the API came from
// one; "" otherwise.
func (c *client) otherContexts() string {
	if c.context == "" {
		return ""
	}
	cfg, _, err := readConfig(os.Getenv)
	if err != nil {
		return ""
	}
	var others []string
	for _, name := range cfg.names() {
		if name != c.context {
			others = append(others, name)
		}
	}
	if len(others) == 0 {
		return ""
	}
	return fmt.Sprintf("; or use another context (atollctl config use-context NAME, or --context NAME): %s", strings.Join(others, ", "))
}

// knownZones lists the zones the global knows, for the hint; "" when it
// cannot say.
func (c *client) knownZones(ctx context.Context) string {
	data, status, _, err := c.roundTrip(ctx, http.MethodGet, "/zones", nil)
	if err != nil || status != http.StatusOK {
		return ""
	}
	var list struct {
		Items []zoneView `json:"items"`
	}
	if json.Unmarshal(data, &list) != nil || len(list.Items) == 0 {
		return ""
	}
	var zones []string
	for _, z := range list.Items {
		state := "offline"
		if z.Online {
			state = "online"
		}
		zones = append(zones, fmt.Sprintf("%s (%s)", z.Name, state))
	}
	return "; zones this global knows: " + strings.Join(zones, ", ")
}

// globalOf guesses the API URL of the global a zone syncs with: the host of
// its KDS address and the global's default API port.
func (c *client) globalOf(ctx context.Context, zone string) string {
	const fallback = "with the global's API URL, e.g. http://127.0.0.1:5681"
	data, status, _, err := c.roundTrip(ctx, http.MethodGet, "/zone", nil)
	if err != nil || status != http.StatusOK {
		return fallback
	}
	var st zoneStatus
	if json.Unmarshal(data, &st) != nil {
		return fallback
	}
	if st.GlobalAddress == "" {
		return fallback + fmt.Sprintf(" (zone %s runs without a global)", zone)
	}
	u, err := url.Parse(st.GlobalAddress)
	if err != nil || u.Hostname() == "" {
		return fallback
	}
	scheme := "https"
	if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
		scheme = "http"
	}
	api := scheme + "://" + net.JoinHostPort(u.Hostname(), "5681")
	return fmt.Sprintf("%s (zone %s syncs with the global at %s; 5681 is the global's default API port)", api, zone, st.GlobalAddress)
}

// excerpt is the start of an answer's body, on one line.
func excerpt(data []byte) string {
	s := strings.Join(strings.Fields(string(data)), " ")
	if s == "" {
		return "empty body"
	}
	if len(s) > 80 {
		cut := 80
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}
