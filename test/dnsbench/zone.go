package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/atoll-mesh/atoll/internal/vip"
)

// zoneTTL is the zone's DNS TTL (--dns-ttl), also CoreDNS's zone file TTL
// and SOA minimum, so both servers answer with the same TTLs.
const zoneTTL = 5 * time.Second

func name(i int) string { return fmt.Sprintf("svc-%05d", i) }

// buildAtoll builds cmd/atoll into dir, for when -atoll is not given.
func buildAtoll(dir string) (string, error) {
	bin := filepath.Join(dir, "atoll")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/atoll").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/atoll (run from the repository root, or pass -atoll): %w\n%s", err, out)
	}
	return bin, nil
}

// startZone starts `atoll zone` in universal mode with no global, pinned
// to CPU 0, its DNS server on dnsPort and its API on apiPort.
func startZone(bin, dir string, apiPort, dnsPort int) *exec.Cmd {
	cmd := exec.Command("taskset", "-c", "0", bin, "zone", "--zone", "bench", "--mode", "universal",
		"--data-dir", filepath.Join(dir, "zone"),
		"--api-addr", fmt.Sprintf("127.0.0.1:%d", apiPort),
		"--dns-addr", fmt.Sprintf("127.0.0.1:%d", dnsPort),
		"--dns-ttl", zoneTTL.String(),
		"--xds-addr", "127.0.0.1:0",
		"--log-level", "warn")
	cmd.Stderr = os.Stderr
	return cmd
}

// register PUTs one Dataplane per service through the zone's API, eight
// at a time. The zone offers the services in its own ZoneIngress and,
// with no global to assign VIPs, its DNS serves its proposed VIPs.
func register(apiURL string, count int) error {
	if err := waitHTTP(apiURL + "/readyz"); err != nil {
		return err
	}
	next := make(chan int)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				body := fmt.Sprintf(`{"type":"Dataplane","mesh":"default","name":"%s-1","networking":{"address":"127.0.0.1","inbound":[{"port":9001,"tags":{"atoll.io/service":"%s","atoll.io/protocol":"grpc"}}]}}`, name(i), name(i))
				req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/meshes/default/dataplanes/%s-1", apiURL, name(i)), strings.NewReader(body))
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode/100 != 2 {
						err = fmt.Errorf("PUT Dataplane %s-1: HTTP %d", name(i), resp.StatusCode)
					}
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		})
	}
	var err error
feed:
	for i := range count {
		select {
		case next <- i:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err != nil {
		return err
	}
	select {
	case err = <-errs:
	default:
	}
	return err
}

func waitHTTP(url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within 30s", url)
}

// zoneVIPs polls GET /meshes/default/vips until it lists count services,
// each with a VIP and no conflict, and returns them.
func zoneVIPs(apiURL string, count int) ([]vip.View, error) {
	deadline := time.Now().Add(60 * time.Second)
	var got int
	for time.Now().Before(deadline) {
		resp, err := http.Get(apiURL + "/meshes/default/vips")
		if err == nil {
			var l struct {
				Items []vip.View `json:"items"`
			}
			err = json.NewDecoder(resp.Body).Decode(&l)
			resp.Body.Close()
			if err == nil {
				got = len(l.Items)
				if got == count {
					for _, v := range l.Items {
						if v.VIP == "" || v.Conflict != nil {
							return nil, fmt.Errorf("the zone lists %s without a usable VIP: %+v", v.Service, v)
						}
					}
					return l.Items, nil
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil, fmt.Errorf("the zone lists %d of %d services in GET /meshes/default/vips after 60s", got, count)
}

// writeZoneFile writes CoreDNS's zone file for mesh. from the zone's VIPs:
// an A record per IPv4 VIP and an AAAA record per IPv6 VIP, so a name with
// no IPv6 VIP has no AAAA record (NODATA), as in atoll's table. The SOA is
// the one atoll puts in its negative answers. There is no NS record: atoll
// sends none, and CoreDNS would add it to the authority section of every
// positive answer.
func writeZoneFile(path string, views []vip.View) error {
	var z bytes.Buffer
	ttl := int(zoneTTL.Seconds())
	fmt.Fprintf(&z, "$ORIGIN mesh.\n$TTL %d\n@ IN SOA ns.mesh. hostmaster.mesh. 1 3600 600 86400 %d\n", ttl, ttl)
	for _, v := range views {
		for _, s := range []string{v.VIP, v.VIP6} {
			a, err := netip.ParseAddr(s)
			switch {
			case s == "":
			case err != nil:
				return fmt.Errorf("service %s: VIP %q: %w", v.Service, s, err)
			case a.Is4():
				fmt.Fprintf(&z, "%s IN A %s\n", strings.ToLower(v.Service), a)
			default:
				fmt.Fprintf(&z, "%s IN AAAA %s\n", strings.ToLower(v.Service), a)
			}
		}
	}
	return os.WriteFile(path, z.Bytes(), 0o644)
}

// writeCorefile configures CoreDNS as the authority for mesh. with the
// file plugin, like atoll's server, and returns its path.
func writeCorefile(dir, zoneFile string, port int) (string, error) {
	path := filepath.Join(dir, "Corefile")
	conf := fmt.Sprintf("mesh.:%d {\n    bind 127.0.0.1\n    file %s\n    errors\n}\n", port, zoneFile)
	return path, os.WriteFile(path, []byte(conf), 0o644)
}

// nxName is the i-th name that does not exist under mesh.
func nxName(i int) string { return fmt.Sprintf("nx-%05d", i) }

// writeQueries writes the dnsperf query file: each lookup asks A and then
// AAAA for one name, as dual-stack resolvers do; names that exist and names
// that do not (NXDOMAIN) are interleaved so that nxPercent of the lookups
// are for names that do not exist. It returns how many queries it wrote.
func writeQueries(path string, count, nxPercent int) (int, error) {
	if nxPercent < 0 || nxPercent >= 100 {
		return 0, errors.New("-nx-percent must be in [0, 100)")
	}
	var q bytes.Buffer
	n, nx := 0, 0
	for i := range count {
		fmt.Fprintf(&q, "%s.mesh A\n%s.mesh AAAA\n", name(i), name(i))
		n += 2
		// Add nonexistent names while they stay within nxPercent of the
		// lookups so far: nx/(nx+i+1) <= nxPercent/100.
		for (nx+1)*(100-nxPercent) <= (i+1)*nxPercent {
			fmt.Fprintf(&q, "%s.mesh A\n%s.mesh AAAA\n", nxName(nx), nxName(nx))
			n += 2
			nx++
		}
	}
	return n, os.WriteFile(path, q.Bytes(), 0o644)
}
