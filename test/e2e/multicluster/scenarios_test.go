package multicluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// settleTimeout bounds how long a change may take to show where a scenario
// looks for it (KDS, the zone's watch, DNS); only waited for.
const settleTimeout = 60 * time.Second

// The workloads the scenarios run, and the names the zone gives them.
const (
	gatewayNamespace = "kong"
	gatewayName      = "kong-proxy"
	backendNamespace = "shop"
	backendName      = "backend"
	backendPort      = 9001
	// backendService is the service tag of the backend's Dataplanes: the
	// zone names a workload's service <name>_<namespace>_svc_<port>.
	backendService = "backend_shop_svc_9001"
	// backendMeshName is the name the zone's DNS serves for that tag
	// (README "DNS and VIPs": <name>.<namespace>.svc.<port>.mesh).
	backendMeshName = "backend.shop.svc.9001.mesh"
)

// TestLocal runs the scenarios, in order, on the local provider: one
// global and two zone clusters on loopback.
func TestLocal(t *testing.T) {
	p := startLocal(t, 2)
	runScenarios(t, p)
}

// runScenarios runs every scenario on p; each builds on the ones before
// it, so the first failure stops the run.
func runScenarios(t *testing.T, p Provider) {
	for _, s := range []struct {
		name string
		run  func(*testing.T, Provider)
	}{
		{"ZonesOnline", zonesOnline},
		{"DelegatedGatewayReachesGlobal", delegatedGatewayReachesGlobal},
		{"BackendSameVIPThroughEachClusterDNS", backendSameVIPEverywhere},
		{"ExternalNameIntoTheMesh", externalNameIntoTheMesh},
		{"GatewayRoutesBackendToZone2", gatewayRoutesBackendToZone2},
		{"ZoneDisconnectAndReconnect", zoneDisconnectAndReconnect},
		{"GlobalRestart", globalRestart},
		{"ZoneRestartWhileGlobalDown", zoneRestartWhileGlobalDown},
		{"BackendScaledToZeroLeavesZone1", backendScaledToZero},
		{"RevokedTokenCutsZoneOff", revokedTokenCutsZoneOff},
	} {
		if !t.Run(s.name, func(t *testing.T) { s.run(t, p) }) {
			t.Fatalf("scenario %s failed; the later ones build on it", s.name)
		}
	}
}

// zonesOnline: every zone, started with a token the global issued, is
// online at the global.
func zonesOnline(t *testing.T, p Provider) {
	for _, c := range p.Zones() {
		waitFor(t, "zone "+c.Zone()+" online at the global", func() error {
			online, err := zoneOnline(p.Global().APIURL(), c.Zone())
			if err == nil && !online {
				err = fmt.Errorf("the global has zone %s offline", c.Zone())
			}
			return err
		})
	}
}

// delegatedGatewayReachesGlobal: a pod annotated atoll.io/gateway: enabled
// in zone-1 is at the global as a DELEGATED Dataplane with its pod IP and
// zone.
func delegatedGatewayReachesGlobal(t *testing.T, p Provider) {
	z1 := p.Zones()[0]
	z1.CreateNamespace(t, gatewayNamespace, true)
	ip := z1.RunGateway(t, gatewayNamespace, gatewayName)
	waitFor(t, "the gateway's DELEGATED Dataplane at the global", func() error {
		return gatewayAtGlobal(p.Global().APIURL(), z1.Zone(), ip)
	})
}

// gatewayAtGlobal says how the global's Dataplane of the gateway's pod in
// zone differs from a DELEGATED gateway at ip, or that there is none.
func gatewayAtGlobal(apiURL, zone, ip string) error {
	status, body := get(apiURL + "/meshes/default/dataplanes")
	if status != http.StatusOK {
		return fmt.Errorf("GET /meshes/default/dataplanes: %d %s", status, body)
	}
	var l struct {
		Items []struct {
			Name       string            `json:"name"`
			Labels     map[string]string `json:"labels"`
			Networking struct {
				Address string `json:"address"`
				Gateway struct {
					Type string `json:"type"`
				} `json:"gateway"`
			} `json:"networking"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		return fmt.Errorf("GET /meshes/default/dataplanes: %v: %s", err, body)
	}
	for _, dp := range l.Items {
		if !strings.HasPrefix(dp.Name, gatewayName+"-0-"+gatewayNamespace+"-") {
			continue
		}
		if dp.Networking.Gateway.Type != "DELEGATED" || dp.Networking.Address != ip || dp.Labels["atoll.io/zone"] != zone {
			return fmt.Errorf("the global has %s with gateway %q, address %s, zone %q; want DELEGATED, %s, %s",
				dp.Name, dp.Networking.Gateway.Type, dp.Networking.Address, dp.Labels["atoll.io/zone"], ip, zone)
		}
		return nil
	}
	return fmt.Errorf("no Dataplane of pod %s-0 at the global: %s", gatewayName, body)
}

// backendSameVIPEverywhere: a backend in zone-2 resolves, through each
// cluster's own DNS, to one VIP: the one zone-2 lists for it.
func backendSameVIPEverywhere(t *testing.T, p Provider) {
	z2 := p.Zones()[1]
	z2.CreateNamespace(t, backendNamespace, true)
	z2.RunBackend(t, backendNamespace, backendName, backendPort, 1)
	var vip string
	waitFor(t, "the backend's VIP on zone-2", func() error {
		var err error
		vip, err = vipOf(z2.ZoneAPIURL(), backendService)
		return err
	})
	for _, c := range p.Zones() {
		waitFor(t, backendMeshName+" through the DNS of "+c.Zone()+"'s cluster", func() error {
			return resolvesTo(c.DNSAddr(), backendMeshName, vip)
		})
	}
}

// externalNameIntoTheMesh: in zone-1, which runs no backend, an
// ExternalName Service backend-remote → the backend's mesh name resolves
// through the cluster's DNS to the backend's VIP.
func externalNameIntoTheMesh(t *testing.T, p Provider) {
	z1, z2 := p.Zones()[0], p.Zones()[1]
	vip, err := vipOf(z2.ZoneAPIURL(), backendService)
	if err != nil {
		t.Fatal(err)
	}
	z1.CreateNamespace(t, backendNamespace, false)
	if _, err := z1.Kube().CoreV1().Services(backendNamespace).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "backend-remote"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: backendMeshName},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods, err := z1.Kube().CoreV1().Pods(backendNamespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 0 {
		t.Fatalf("zone-1 runs %d pods in %s; the scenario needs none there", len(pods.Items), backendNamespace)
	}
	waitFor(t, "backend-remote through zone-1's cluster DNS", func() error {
		return resolvesTo(z1.DNSAddr(), "backend-remote."+backendNamespace+".svc.cluster.local", vip)
	})
}

// gatewayRoutesBackendToZone2: with the mesh's cross-zone mode Direct, the
// gateway in zone-1, which runs no backend, reaches each of the backend's
// pods in zone-2 through its own xDS configuration.
func gatewayRoutesBackendToZone2(t *testing.T, p Provider) {
	z1, z2 := p.Zones()[0], p.Zones()[1]
	if status, body := call(t, "PUT", p.Global().APIURL()+"/meshes/default", `{"type":"Mesh","crossZone":{"mode":"Direct"}}`); status != http.StatusOK {
		t.Fatalf("PUT /meshes/default at the global: %d %s", status, body)
	}
	z2.ScaleBackend(t, backendNamespace, backendName, 2)
	gatewayReaches(t, z1, backendPods(2)...)
}

// zoneDisconnectAndReconnect: zone-2 cut off from the global is offline
// there and knows it; zone-1 keeps what it had, so its gateway still
// reaches zone-2's pods (the data path does not cross the global). A
// backend pod started in zone-2 while it is cut off reaches zone-1 once
// the cut heals.
func zoneDisconnectAndReconnect(t *testing.T, p Provider) {
	z1, z2 := p.Zones()[0], p.Zones()[1]
	z2.Disconnect(t)
	waitFor(t, z2.Zone()+" offline at the global, and seeing the global gone", func() error {
		if online, err := zoneOnline(p.Global().APIURL(), z2.Zone()); err != nil || online {
			return fmt.Errorf("online at the global: %v (%v)", online, err)
		}
		return globalConnected(z2, false)
	})
	gatewayReaches(t, z1, backendPods(2)...)
	z2.ScaleBackend(t, backendNamespace, backendName, 3)
	z2.Reconnect(t)
	zonesOnline(t, p)
	gatewayReaches(t, z1, backendPods(3)...)
}

// globalRestart: while the global is down, each cluster's DNS still
// resolves the backend's mesh name to its VIP, and the gateway still
// reaches the backend's pods (zones serve what they have); once it is
// back, both zones are online again and the gateway's Dataplane is still
// at the global.
func globalRestart(t *testing.T, p Provider) {
	vip, err := vipOf(p.Zones()[1].ZoneAPIURL(), backendService)
	if err != nil {
		t.Fatal(err)
	}
	p.Global().Stop(t)
	for _, c := range p.Zones() {
		waitFor(t, c.Zone()+" seeing the global gone", func() error { return globalConnected(c, false) })
		if err := resolvesTo(c.DNSAddr(), backendMeshName, vip); err != nil {
			t.Errorf("with the global down, through the DNS of %s's cluster: %v", c.Zone(), err)
		}
	}
	gatewayReaches(t, p.Zones()[0], backendPods(3)...)
	p.Global().Start(t)
	zonesOnline(t, p)
	z1 := p.Zones()[0]
	gw, err := z1.Kube().CoreV1().Pods(gatewayNamespace).Get(context.Background(), gatewayName+"-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the gateway's Dataplane at the restarted global", func() error {
		return gatewayAtGlobal(p.Global().APIURL(), z1.Zone(), gw.Status.PodIP)
	})
}

// zoneRestartWhileGlobalDown: zone-1 restarted while the global is down
// still resolves the backend of zone-2 to its VIP through its cluster's
// DNS, and its gateway still reaches the backend's pods (what it knew is
// kept in the cluster); both zones are online once the global is back.
func zoneRestartWhileGlobalDown(t *testing.T, p Provider) {
	z1 := p.Zones()[0]
	vip, err := vipOf(p.Zones()[1].ZoneAPIURL(), backendService)
	if err != nil {
		t.Fatal(err)
	}
	p.Global().Stop(t)
	z1.RestartZone(t)
	waitFor(t, backendMeshName+" through zone-1's DNS after its restart, the global down", func() error {
		return resolvesTo(z1.DNSAddr(), backendMeshName, vip)
	})
	gatewayReaches(t, z1, backendPods(3)...)
	p.Global().Start(t)
	zonesOnline(t, p)
}

// backendScaledToZero: with the backend scaled to zero in zone-2, zone-1
// no longer counts any instance of it in zone-2, and its gateway's
// requests to the backend fail.
func backendScaledToZero(t *testing.T, p Provider) {
	z1, z2 := p.Zones()[0], p.Zones()[1]
	waitFor(t, "zone-1 seeing the backend's 3 instances in zone-2", func() error {
		n, err := instances(z1.ZoneAPIURL(), backendService, z2.Zone())
		if err == nil && n != 3 {
			err = fmt.Errorf("zone-1 counts %d instances of %s in %s, want 3", n, backendService, z2.Zone())
		}
		return err
	})
	z2.ScaleBackend(t, backendNamespace, backendName, 0)
	waitFor(t, "the backend's endpoints to leave zone-1", func() error {
		n, err := instances(z1.ZoneAPIURL(), backendService, z2.Zone())
		if err == nil && n != 0 {
			err = fmt.Errorf("zone-1 still counts %d instances of %s in %s", n, backendService, z2.Zone())
		}
		return err
	})
	waitFor(t, "the gateway's requests to the backend failing", func() error {
		if pods, err := z1.CallFromGateway(t, gatewayNamespace, gatewayName, backendMeshName, backendPort, 1); err == nil {
			return fmt.Errorf("answered by %v", pods)
		}
		return nil
	})
}

// backendPods are the names of the backend's first n pods.
func backendPods(n int) []string {
	pods := make([]string, n)
	for i := range pods {
		pods[i] = fmt.Sprintf("%s-%d", backendName, i)
	}
	return pods
}

// gatewayReaches waits until requests of c's gateway to the backend are
// answered by exactly the pods want, each of them at least once.
func gatewayReaches(t *testing.T, c Cluster, want ...string) {
	t.Helper()
	waitFor(t, "the gateway in "+c.Zone()+" reaching "+strings.Join(want, ", "), func() error {
		pods, err := c.CallFromGateway(t, gatewayNamespace, gatewayName, backendMeshName, backendPort, 4*len(want))
		if err != nil {
			return err
		}
		seen := slices.Compact(slices.Sorted(slices.Values(pods)))
		if !slices.Equal(seen, want) {
			return fmt.Errorf("answered by %v, want each of %v", pods, want)
		}
		return nil
	})
}

// globalConnected says how c's zone differs from being connected to the
// global (want true) or not (false), by the zone's own GET /zone.
func globalConnected(c Cluster, want bool) error {
	status, body := get(c.ZoneAPIURL() + "/zone")
	var z struct {
		Connected bool `json:"connected"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &z) != nil || z.Connected != want {
		return fmt.Errorf("connected to the global: want %v; GET /zone: %d %s", want, status, body)
	}
	return nil
}

// revokedTokenCutsZoneOff: revoking zone-1's tokens at the global cuts
// zone-1 off (offline at the global, its credentials refused as the zone
// itself reports) and leaves zone-2 online. It comes last: zone-1 stays
// cut off.
func revokedTokenCutsZoneOff(t *testing.T, p Provider) {
	z1, z2 := p.Zones()[0], p.Zones()[1]
	if status, body := call(t, "DELETE", p.Global().APIURL()+"/zones/"+z1.Zone()+"/tokens", ""); status/100 != 2 {
		t.Fatalf("revoking the tokens of %s: %d %s", z1.Zone(), status, body)
	}
	waitFor(t, z1.Zone()+" cut off", func() error {
		if online, err := zoneOnline(p.Global().APIURL(), z1.Zone()); err != nil || online {
			return fmt.Errorf("online at the global: %v (%v)", online, err)
		}
		status, body := get(z1.ZoneAPIURL() + "/zone")
		if status != http.StatusOK || !strings.Contains(body, `"credentialsRefused":true`) {
			return fmt.Errorf("%s does not report its credentials refused: GET /zone: %d %s", z1.Zone(), status, body)
		}
		return nil
	})
	if online, err := zoneOnline(p.Global().APIURL(), z2.Zone()); err != nil || !online {
		t.Errorf("revoking %s's tokens took %s offline too (online %v, %v)", z1.Zone(), z2.Zone(), online, err)
	}
}

// zoneOnline is whether the global has zone online.
func zoneOnline(apiURL, zone string) (bool, error) {
	status, body := get(apiURL + "/zones/" + zone)
	if status != http.StatusOK {
		return false, fmt.Errorf("GET /zones/%s: %d %s", zone, status, body)
	}
	var z struct {
		Online bool `json:"online"`
	}
	if err := json.Unmarshal([]byte(body), &z); err != nil {
		return false, fmt.Errorf("GET /zones/%s: %v: %s", zone, err, body)
	}
	return z.Online, nil
}

// vipOf is the VIP a control plane lists for service.
func vipOf(apiURL, service string) (string, error) {
	status, body := get(apiURL + "/meshes/default/vips")
	if status != http.StatusOK {
		return "", fmt.Errorf("GET /meshes/default/vips: %d %s", status, body)
	}
	var l struct {
		Items []struct {
			Service string `json:"service"`
			VIP     string `json:"vip"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		return "", fmt.Errorf("GET /meshes/default/vips: %v: %s", err, body)
	}
	for _, it := range l.Items {
		if it.Service == service && it.VIP != "" {
			return it.VIP, nil
		}
	}
	return "", fmt.Errorf("no VIP for %s in %s/meshes/default/vips: %s", service, apiURL, body)
}

// instances is how many instances of service in zone a zone's
// GET /meshes/default/services counts (0 when the service is not listed).
func instances(apiURL, service, zone string) (uint32, error) {
	status, body := get(apiURL + "/meshes/default/services")
	if status != http.StatusOK {
		return 0, fmt.Errorf("GET /meshes/default/services: %d %s", status, body)
	}
	var l struct {
		Items []struct {
			Name  string            `json:"name"`
			Zones map[string]uint32 `json:"zones"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		return 0, fmt.Errorf("GET /meshes/default/services: %v: %s", err, body)
	}
	for _, it := range l.Items {
		if it.Name == service {
			return it.Zones[zone], nil
		}
	}
	return 0, nil
}

// resolvesTo asks dns for name's A records over UDP and TCP, and says how
// the answer differs from exactly want.
func resolvesTo(dns, name, want string) error {
	for _, network := range []string{"udp", "tcp"} {
		c := &mdns.Client{Net: network, Timeout: 2 * time.Second}
		r, _, err := c.Exchange(new(mdns.Msg).SetQuestion(mdns.Fqdn(name), mdns.TypeA), dns)
		if err != nil {
			return fmt.Errorf("%s question for %s to %s: %v", network, name, dns, err)
		}
		var got []string
		for _, rr := range r.Answer {
			if a, ok := rr.(*mdns.A); ok {
				got = append(got, a.A.String())
			}
		}
		if r.Rcode != mdns.RcodeSuccess || !slices.Equal(got, []string{want}) {
			return fmt.Errorf("%s: %s A = %v (%s), want [%s]", network, name, got, mdns.RcodeToString[r.Rcode], want)
		}
	}
	return nil
}

// waitFor polls cond until it returns nil, failing the test with cond's
// last error after settleTimeout.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	waitUntil(t, what, settleTimeout, 100*time.Millisecond, cond)
}

// waitUntil polls cond every interval until it returns nil, failing the
// test with cond's last error after timeout.
func waitUntil(t *testing.T, what string, timeout, interval time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %s for %s: %v", timeout, what, err)
		}
		time.Sleep(interval)
	}
}

// issueZoneToken has the global whose API is apiURL issue a token for
// zone, valid for validFor, as atollctl generate zone-token would.
func issueZoneToken(t *testing.T, apiURL, zone, validFor string) string {
	t.Helper()
	status, body := call(t, "POST", apiURL+"/zones/"+zone+"/tokens", `{"validFor":"`+validFor+`"}`)
	if status != http.StatusCreated {
		t.Fatalf("issuing a token for %s: %d %s", zone, status, body)
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || out.Token == "" {
		t.Fatalf("issuing a token for %s: %v %s", zone, err, body)
	}
	return out.Token
}

// get sends a GET and returns the status and body; a failed request is
// status 0 with the error as body.
func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// call sends a request with a JSON body and returns the status and body.
func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}
