package inject

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atoll-mesh/atoll/internal/certs"
)

func testConfig() Config {
	c := Default()
	c.XDSAddress = "atoll-zone.atoll-system.svc:5678"
	c.DNSAddress = "atoll-zone-dns.atoll-system.svc:53"
	c.Zone = "zone-1"
	return c
}

func meshNamespace() *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop",
		Labels: map[string]string{"atoll.io/sidecar-injection": "enabled"}}}
}

func plainNamespace() *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}}
}

func newPod(annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
	}
}

// apply applies patch to pod the way the API server does.
func apply(t *testing.T, pod *corev1.Pod, patch []PatchOp) *corev1.Pod {
	t.Helper()
	doc, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(patch)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := jsonpatch.DecodePatch(p)
	if err != nil {
		t.Fatalf("patch %s does not decode: %v", p, err)
	}
	out, err := decoded.Apply(doc)
	if err != nil {
		t.Fatalf("patch %s does not apply: %v", p, err)
	}
	var got corev1.Pod
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	return &got
}

func container(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

// sidecarOf is the pod's atoll-sidecar: a native sidecar among its init
// containers, or one of its containers.
func sidecarOf(pod *corev1.Pod) *corev1.Container {
	if c := container(pod.Spec.InitContainers, SidecarContainerName); c != nil {
		return c
	}
	return container(pod.Spec.Containers, SidecarContainerName)
}

func env(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				return "field:" + e.ValueFrom.FieldRef.FieldPath
			}
			return e.Value
		}
	}
	return "<unset>"
}

func TestMutateInjects(t *testing.T) {
	cases := []struct {
		name        string
		ns          *corev1.Namespace
		annotations map[string]string
		initArgs    string
		mesh        string
	}{
		{
			name:     "workload in a mesh namespace",
			ns:       meshNamespace(),
			initArgs: "transparent-proxy install --proxy-uid=5678 --outbound-port=15001 --inbound-port=15006 --dns-port=15053 --redirect-inbound=true --redirect-dns=true --exclude-inbound-ports=9901 --exclude-outbound-ports= --exclude-outbound-cidrs=",
			mesh:     "default",
		},
		{
			name:        "gateway keeps its inbound traffic",
			ns:          meshNamespace(),
			annotations: map[string]string{"atoll.io/gateway": "enabled", "atoll.io/mesh": "payments"},
			initArgs:    "transparent-proxy install --proxy-uid=5678 --outbound-port=15001 --inbound-port=15006 --dns-port=15053 --redirect-inbound=false --redirect-dns=true --exclude-inbound-ports= --exclude-outbound-ports= --exclude-outbound-cidrs=",
			mesh:        "payments",
		},
		{
			name:        "pod opted in outside a mesh namespace, with excluded ports",
			ns:          plainNamespace(),
			annotations: map[string]string{"atoll.io/sidecar-injection": "enabled", "atoll.io/exclude-inbound-ports": "8443, 9901,15020"},
			initArgs:    "transparent-proxy install --proxy-uid=5678 --outbound-port=15001 --inbound-port=15006 --dns-port=15053 --redirect-inbound=true --redirect-dns=true --exclude-inbound-ports=9901,8443,15020 --exclude-outbound-ports= --exclude-outbound-cidrs=",
			mesh:        "default",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := newPod(tc.annotations)
			patch, err := Mutate(testConfig(), tc.ns, pod)
			if err != nil {
				t.Fatalf("Mutate: %v", err)
			}
			got := apply(t, pod, patch)

			if got.Spec.ServiceAccountName != "default" {
				t.Errorf("service account = %q, want default (the projected token needs one)", got.Spec.ServiceAccountName)
			}
			if got.Annotations[InjectedAnnotation] != "true" {
				t.Errorf("annotations = %v, want %s: true", got.Annotations, InjectedAnnotation)
			}
			for k, v := range tc.annotations {
				if got.Annotations[k] != v {
					t.Errorf("annotation %s = %q, want %q kept", k, got.Annotations[k], v)
				}
			}
			// A native sidecar: the rules, then the sidecar, before the app.
			if len(got.Spec.Containers) != 1 || got.Spec.Containers[0].Name != "app" {
				t.Fatalf("containers = %+v, want app alone", got.Spec.Containers)
			}
			if len(got.Spec.InitContainers) != 2 || got.Spec.InitContainers[0].Name != InitContainerName || got.Spec.InitContainers[1].Name != SidecarContainerName {
				t.Fatalf("init containers = %+v, want %s then %s", got.Spec.InitContainers, InitContainerName, SidecarContainerName)
			}
			init := &got.Spec.InitContainers[0]
			if init.RestartPolicy != nil {
				t.Errorf("%s restart policy = %s, want none (it runs once)", InitContainerName, *init.RestartPolicy)
			}
			if cmd := strings.Join(init.Command, " "); cmd != "atoll" {
				t.Errorf("init command = %q", cmd)
			}
			if args := strings.Join(init.Args, " "); args != tc.initArgs {
				t.Errorf("init args = %q, want %q", args, tc.initArgs)
			}
			sc := init.SecurityContext
			if sc == nil || *sc.RunAsUser != 0 || *sc.RunAsNonRoot || len(sc.Capabilities.Add) != 2 {
				t.Errorf("init security context = %+v, want root with NET_ADMIN and NET_RAW", sc)
			}
			if init.Image != "atoll-init:latest" {
				t.Errorf("init image = %q", init.Image)
			}

			side := sidecarOf(got)
			if side.RestartPolicy == nil || *side.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				t.Errorf("sidecar restart policy = %v, want Always (a native sidecar)", side.RestartPolicy)
			}
			if p := side.StartupProbe; p == nil || p.Exec == nil || strings.Join(p.Exec.Command, " ") != "atoll sidecar probe" {
				t.Errorf("sidecar startup probe = %+v, want atoll sidecar probe", p)
			}
			if side.Image != "atoll-sidecar:latest" || strings.Join(side.Command, " ") != "atoll sidecar" {
				t.Errorf("sidecar image %q command %v", side.Image, side.Command)
			}
			if *side.SecurityContext.RunAsUser != ProxyUID || *side.SecurityContext.RunAsGroup != ProxyUID {
				t.Errorf("sidecar runs as %d:%d, want %d", *side.SecurityContext.RunAsUser, *side.SecurityContext.RunAsGroup, ProxyUID)
			}
			want := map[string]string{
				EnvPodName:       "field:metadata.name",
				EnvPodNamespace:  "field:metadata.namespace",
				EnvMesh:          tc.mesh,
				EnvZone:          "zone-1",
				EnvXDSAddress:    "atoll-zone.atoll-system.svc:5678",
				EnvTokenFile:     "/var/run/secrets/atoll.io/token",
				EnvEnvoyLogLevel: "info",
				EnvDNSAddress:    "atoll-zone-dns.atoll-system.svc:53",
				EnvRunDir:        RunDir,
				EnvXDSCA:         "<unset>", // plaintext
			}
			for k, v := range want {
				if g := env(side, k); g != v {
					t.Errorf("sidecar env %s = %q, want %q", k, g, v)
				}
			}
			if q := side.Resources.Limits.Memory().String(); q != "512Mi" {
				t.Errorf("sidecar memory limit = %s, want 512Mi", q)
			}
			if q := side.Resources.Requests.Cpu().String(); q != "50m" {
				t.Errorf("sidecar CPU request = %s, want 50m", q)
			}
			if len(side.VolumeMounts) != 2 || side.VolumeMounts[0].MountPath != TokenDir || !side.VolumeMounts[0].ReadOnly ||
				side.VolumeMounts[1].Name != RunVolumeName || side.VolumeMounts[1].MountPath != RunDir || side.VolumeMounts[1].ReadOnly {
				t.Errorf("sidecar mounts = %+v, want %s read-only and %s writable", side.VolumeMounts, TokenDir, RunDir)
			}
			if sc := side.SecurityContext; !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || !*sc.RunAsNonRoot ||
				len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0 {
				t.Errorf("sidecar security context = %+v, want read-only root, no privilege escalation, non-root, no capabilities", sc)
			}
			if len(got.Spec.Volumes) != 2 || got.Spec.Volumes[0].Projected == nil {
				t.Fatalf("volumes = %+v, want the projected token and the run dir", got.Spec.Volumes)
			}
			if run := got.Spec.Volumes[1]; run.Name != RunVolumeName || run.EmptyDir == nil || run.EmptyDir.Medium != corev1.StorageMediumMemory {
				t.Errorf("run volume = %+v, want an emptyDir in memory", run)
			}
			tok := got.Spec.Volumes[0].Projected.Sources[0].ServiceAccountToken
			if tok.Audience != TokenAudience || *tok.ExpirationSeconds != 3600 || tok.Path != "token" {
				t.Errorf("token projection = %+v", tok)
			}

			// Admitting the injected pod again changes nothing.
			again, err := Mutate(testConfig(), tc.ns, got)
			if err != nil || again != nil {
				t.Errorf("re-admission = %v, %v: want no patch", again, err)
			}
		})
	}
}

// The zone's xDS CA reaches the sidecar as ATOLL_XDS_CA, read from its
// file at every admission: a CA replaced on disk reaches the next pod.
func TestMutateGivesTheSidecarTheXDSCA(t *testing.T) {
	dir := t.TempDir()
	files, _, err := certs.EnsureSelfSigned(dir, []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.XDSCAFile = files.CA
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	caOf := func() string {
		t.Helper()
		pod := newPod(nil)
		patch, err := Mutate(cfg, meshNamespace(), pod)
		if err != nil {
			t.Fatal(err)
		}
		return env(sidecarOf(apply(t, pod, patch)), EnvXDSCA)
	}
	first, _ := os.ReadFile(files.CA)
	if got := caOf(); got != string(first) {
		t.Fatalf("%s = %q, want the CA file's content", EnvXDSCA, got)
	}
	// A new CA in its place (a rotated Secret, say).
	other, _, err := certs.EnsureSelfSigned(t.TempDir(), []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(other.CA)
	if err := os.WriteFile(files.CA, second, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := caOf(); got != string(second) || got == string(first) {
		t.Errorf("%s after the CA changed = %q, want the new CA", EnvXDSCA, got)
	}
	// A CA file that is not a CA, or gone, at admission time refuses the
	// pod rather than injecting a sidecar that cannot connect.
	if err := os.WriteFile(files.CA, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Mutate(cfg, meshNamespace(), newPod(nil)); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("Mutate with a CA file holding no certificate = %v, want an error saying so", err)
	}
	os.Remove(files.CA)
	if _, err := Mutate(cfg, meshNamespace(), newPod(nil)); err == nil || !strings.Contains(err.Error(), "xds CA file") {
		t.Errorf("Mutate without the CA file = %v, want an error naming it", err)
	}
}

func TestMutateAppendsToExistingLists(t *testing.T) {
	pod := newPod(map[string]string{"team": "a"})
	pod.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "m:1"}}
	pod.Spec.ServiceAccountName = "web"
	pod.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	patch, err := Mutate(testConfig(), meshNamespace(), pod)
	if err != nil {
		t.Fatal(err)
	}
	got := apply(t, pod, patch)
	if names := containerNames(got.Spec.InitContainers); names != "atoll-init atoll-sidecar migrate" {
		t.Errorf("init containers = %s, want atoll-init atoll-sidecar migrate (migrate's traffic goes through the mesh)", names)
	}
	if len(got.Spec.Volumes) != 3 || got.Spec.Volumes[0].Name != "data" || got.Spec.Volumes[1].Name != TokenVolumeName || got.Spec.Volumes[2].Name != RunVolumeName {
		t.Errorf("volumes = %+v, want data then %s and %s", got.Spec.Volumes, TokenVolumeName, RunVolumeName)
	}
	if got.Spec.ServiceAccountName != "web" {
		t.Errorf("service account = %q, want web kept", got.Spec.ServiceAccountName)
	}
	if got.Annotations["team"] != "a" || got.Annotations[InjectedAnnotation] != "true" {
		t.Errorf("annotations = %v", got.Annotations)
	}
}

func containerNames(cs []corev1.Container) string {
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return strings.Join(names, " ")
}

// Without native sidecars (clusters before Kubernetes 1.29), the sidecar
// is the last container and the rules the last init container: the pod's
// own init containers run before any redirection, since no proxy would
// take their traffic.
func TestMutateWithoutNativeSidecars(t *testing.T) {
	cfg := testConfig()
	cfg.NativeSidecar = false
	pod := newPod(map[string]string{"atoll.io/gateway": "enabled"})
	pod.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "m:1"}}
	patch, err := Mutate(cfg, meshNamespace(), pod)
	if err != nil {
		t.Fatal(err)
	}
	got := apply(t, pod, patch)
	if names := containerNames(got.Spec.InitContainers); names != "migrate atoll-init" {
		t.Errorf("init containers = %s, want migrate atoll-init", names)
	}
	if names := containerNames(got.Spec.Containers); names != "app atoll-sidecar" {
		t.Errorf("containers = %s, want app atoll-sidecar", names)
	}
	side := sidecarOf(got)
	if side.RestartPolicy != nil || side.StartupProbe != nil {
		t.Errorf("sidecar restart policy %v startup probe %v, want neither in an ordinary container", side.RestartPolicy, side.StartupProbe)
	}
	if again, err := Mutate(cfg, meshNamespace(), got); err != nil || again != nil {
		t.Errorf("re-admission = %v, %v: want no patch", again, err)
	}
}

func TestMutateLeavesAlone(t *testing.T) {
	withSidecar := newPod(nil)
	withSidecar.Spec.Containers = append(withSidecar.Spec.Containers, corev1.Container{Name: SidecarContainerName})
	withNative := newPod(nil)
	withNative.Spec.InitContainers = []corev1.Container{{Name: SidecarContainerName}}
	cases := []struct {
		name string
		ns   *corev1.Namespace
		pod  *corev1.Pod
	}{
		{"not in the mesh", plainNamespace(), newPod(nil)},
		{"opted out", meshNamespace(), newPod(map[string]string{"atoll.io/sidecar-injection": "disabled"})},
		{"marked injected", meshNamespace(), newPod(map[string]string{InjectedAnnotation: "true"})},
		{"carrying a sidecar", meshNamespace(), withSidecar},
		{"carrying a native sidecar", meshNamespace(), withNative},
		{"gateway outside the mesh", plainNamespace(), newPod(map[string]string{"atoll.io/gateway": "enabled"})},
		{"bad exclude list outside the mesh", plainNamespace(), newPod(map[string]string{ExcludeInboundPortsAnnotation: "x"})},
		{"no pod", meshNamespace(), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			patch, err := Mutate(testConfig(), tc.ns, tc.pod)
			if err != nil || patch != nil {
				t.Errorf("Mutate = %v, %v: want no patch and no error", patch, err)
			}
		})
	}
}

func TestMutateDenies(t *testing.T) {
	clash := newPod(nil)
	clash.Spec.Volumes = []corev1.Volume{{Name: TokenVolumeName}}
	initClash := newPod(nil)
	initClash.Spec.InitContainers = []corev1.Container{{Name: InitContainerName}}
	cases := []struct {
		name string
		ns   *corev1.Namespace
		pod  *corev1.Pod
		want []string // in the message
	}{
		{"bad injection value", plainNamespace(), newPod(map[string]string{"atoll.io/sidecar-injection": "yes"}),
			[]string{"atoll.io/sidecar-injection", `"yes"`, `"enabled"`, `"disabled"`}},
		{"bad gateway value", meshNamespace(), newPod(map[string]string{"atoll.io/gateway": "true"}),
			[]string{"atoll.io/gateway", `"true"`, `"enabled"`}},
		{"bad mesh name", meshNamespace(), newPod(map[string]string{"atoll.io/mesh": "Pay_ments"}),
			[]string{"atoll.io/mesh", `"Pay_ments"`, "lowercase letters"}},
		{"port out of range", meshNamespace(), newPod(map[string]string{ExcludeInboundPortsAnnotation: "8080,70000"}),
			[]string{ExcludeInboundPortsAnnotation, `"8080,70000"`, `"70000" is not a port`, "1 to 65535"}},
		{"empty entry", meshNamespace(), newPod(map[string]string{ExcludeInboundPortsAnnotation: "8080,"}),
			[]string{ExcludeInboundPortsAnnotation, "empty entry"}},
		{"port twice", meshNamespace(), newPod(map[string]string{ExcludeInboundPortsAnnotation: "80,80"}),
			[]string{ExcludeInboundPortsAnnotation, "port 80 is listed twice"}},
		{"inbound port excluded", meshNamespace(), newPod(map[string]string{ExcludeInboundPortsAnnotation: "15006"}),
			[]string{ExcludeInboundPortsAnnotation, `"15006"`, "lists the inbound port 15006 itself"}},
		{"volume name clash", meshNamespace(), clash, []string{"volume named atoll-token", "atoll.io/sidecar-injection: disabled"}},
		{"init container name clash", meshNamespace(), initClash, []string{"container named atoll-init"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			patch, err := Mutate(testConfig(), tc.ns, tc.pod)
			d, ok := err.(*Denial)
			if !ok || patch != nil {
				t.Fatalf("Mutate = %v, %v: want a *Denial", patch, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(d.Message, w) {
					t.Errorf("message %q does not say %q", d.Message, w)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Config)
		want   string // in the error; "" for none
	}{
		{"valid", func(*Config) {}, ""},
		{"no resources", func(c *Config) { c.Resources = Resources{} }, ""},
		{"no sidecar image", func(c *Config) { c.SidecarImage = "" }, "sidecar image is required"},
		{"no init image", func(c *Config) { c.InitImage = "" }, "init image is required"},
		{"bad log level", func(c *Config) { c.EnvoyLogLevel = "loud" }, `envoy log level "loud"`},
		{"bad quantity", func(c *Config) { c.Resources.CPULimit = "lots" }, `sidecar CPU limit "lots" is not a quantity`},
		{"limit below request", func(c *Config) { c.Resources.MemoryLimit = "32Mi" }, "memory limit 32Mi is below its request 64Mi"},
		{"no xds address", func(c *Config) { c.XDSAddress = "" }, "xds address"},
		{"xds address without port", func(c *Config) { c.XDSAddress = "zone.svc" }, `"zone.svc" is not host:port`},
		{"xds port out of range", func(c *Config) { c.XDSAddress = "zone.svc:0" }, `port "0"`},
		{"xds address without host", func(c *Config) { c.XDSAddress = ":5678" }, "has no host"},
		{"bad zone", func(c *Config) { c.Zone = "Zone_1" }, "zone name"},
		{"no dns address", func(c *Config) { c.DNSAddress = "" }, "dns address"},
		{"dns address without port", func(c *Config) { c.DNSAddress = "dns.svc" }, `dns address: "dns.svc" is not host:port`},
		{"relative CA file", func(c *Config) { c.XDSCAFile = "ca.pem" }, `xds CA file "ca.pem" is not an absolute path`},
		// Read at admission (the zone's own is made after Validate).
		{"CA file not there yet", func(c *Config) { c.XDSCAFile = "/nonexistent/ca.pem" }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
