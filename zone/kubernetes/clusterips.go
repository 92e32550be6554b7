package kubernetes

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	"github.com/atoll-mesh/atoll/internal/resource"
)

// MeshAddresses is, by mesh, the addresses of the mesh's services: service
// name (<service>_<namespace>_svc_<port>, the atoll.io/service of the
// inbounds the Service's pods get) → the Service's ClusterIPs with that
// port.
type MeshAddresses map[string]map[string][]netip.AddrPort

// ServiceAddressesFor returns the addresses of the Services of mesh
// namespaces: those labelled atoll.io/sidecar-injection: enabled (see
// NamespaceInMesh), whose Services belong to the namespace's atoll.io/mesh
// (default "default"; a namespace naming an invalid mesh has none). A
// Service has addresses when it is not of type ExternalName, not headless,
// and not annotated atoll.io/ignore: "true": each of its ClusterIPs
// (spec.clusterIPs, IPv4 and IPv6) with each of its TCP ports. These are
// the Services service-upstream makes ingress controllers send to.
func ServiceAddressesFor(namespaces []*corev1.Namespace, services []*corev1.Service) MeshAddresses {
	meshOf := make(map[string]string, len(namespaces))
	for _, ns := range namespaces {
		if mesh, ok := namespaceMesh(ns); ok {
			meshOf[ns.Name] = mesh
		}
	}
	out := MeshAddresses{}
	for _, svc := range services {
		mesh, ok := meshOf[svc.Namespace]
		if !ok || svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Annotations[IgnoreAnnotation] == "true" {
			continue
		}
		ips := clusterIPs(svc)
		if len(ips) == 0 {
			continue
		}
		for _, p := range svc.Spec.Ports {
			if !isTCP(p) || p.Port < 1 || p.Port > 65535 {
				continue
			}
			if out[mesh] == nil {
				out[mesh] = map[string][]netip.AddrPort{}
			}
			addrs := make([]netip.AddrPort, len(ips))
			for i, ip := range ips {
				addrs[i] = netip.AddrPortFrom(ip, uint16(p.Port))
			}
			out[mesh][serviceName(svc, p.Port)] = addrs
		}
	}
	return out
}

// namespaceMesh is the mesh of a mesh namespace's Services: its
// atoll.io/mesh annotation, else "default". ok is false for a namespace
// out of the mesh or naming an invalid mesh.
func namespaceMesh(ns *corev1.Namespace) (string, bool) {
	if !NamespaceInMesh(ns) {
		return "", false
	}
	mesh := resource.DefaultMesh
	if v, ok := ns.Annotations[MeshAnnotation]; ok {
		mesh = v
	}
	return mesh, resource.CheckName(mesh) == ""
}

// clusterIPs are a Service's cluster IPs, primary first: spec.clusterIPs,
// else spec.clusterIP; none for a headless Service.
func clusterIPs(svc *corev1.Service) []netip.Addr {
	raw := svc.Spec.ClusterIPs
	if len(raw) == 0 && svc.Spec.ClusterIP != "" {
		raw = []string{svc.Spec.ClusterIP}
	}
	var out []netip.Addr
	for _, s := range raw {
		ip, err := netip.ParseAddr(s)
		if err != nil || !ip.IsValid() || ip.IsUnspecified() {
			continue // "None" (headless), or nothing the API server assigns
		}
		if ip = ip.Unmap(); !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	return out
}

// addressView is the controller's MeshAddresses, recomputed from the
// informer caches after Services or Namespaces change and read without
// locking.
type addressView struct {
	current atomic.Pointer[MeshAddresses]
	dirty   chan struct{} // a change to recompute after; capacity 1

	mu        sync.Mutex
	listeners []func()
}

func newAddressView() *addressView {
	v := &addressView{dirty: make(chan struct{}, 1)}
	v.current.Store(&MeshAddresses{})
	return v
}

// changed marks the view stale; bursts of changes collapse into one
// recompute.
func (v *addressView) changed() {
	select {
	case v.dirty <- struct{}{}:
	default:
	}
}

// watchAddresses keeps the view stale on every change of a Service or
// Namespace.
func (c *Controller) watchAddresses(informers ...cache.SharedIndexInformer) error {
	for _, inf := range informers {
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { c.addrs.changed() },
			UpdateFunc: func(any, any) { c.addrs.changed() },
			DeleteFunc: func(any) { c.addrs.changed() },
		}); err != nil {
			return err
		}
	}
	return nil
}

// keepAddresses recomputes the view from the filled caches now and after
// every change, until ctx ends, and tells the listeners when it differs.
func (c *Controller) keepAddresses(ctx context.Context) {
	for {
		c.recomputeAddresses()
		select {
		case <-ctx.Done():
			return
		case <-c.addrs.dirty:
		}
	}
}

func (c *Controller) recomputeAddresses() {
	namespaces, err := c.namespaces.List(labels.Everything())
	if err != nil {
		c.log.Warn("listing namespaces from the cache", "error", err)
		return
	}
	var services []*corev1.Service
	for _, ns := range namespaces {
		if _, ok := namespaceMesh(ns); !ok {
			continue
		}
		list, err := c.services.Services(ns.Name).List(labels.Everything())
		if err != nil {
			c.log.Warn("listing services from the cache", "namespace", ns.Name, "error", err)
			return
		}
		services = append(services, list...)
	}
	next := ServiceAddressesFor(namespaces, services)
	if maps.EqualFunc(*c.addrs.current.Load(), next, func(a, b map[string][]netip.AddrPort) bool {
		return maps.EqualFunc(a, b, slices.Equal)
	}) {
		return
	}
	c.addrs.current.Store(&next)
	c.addrs.mu.Lock()
	listeners := slices.Clone(c.addrs.listeners)
	c.addrs.mu.Unlock()
	for _, fn := range listeners {
		fn()
	}
}

// ServiceAddresses returns the addresses of mesh's services, as
// ServiceAddressesFor computes them from the controller's caches: service
// name → the Service's ClusterIPs with the port the name ends with. The
// map is shared and never modified: callers must not modify it either. It
// is empty until Run has filled the caches, and costs a map read: the
// view is recomputed when Services or Namespaces change, not per call.
// Safe for concurrent use.
func (c *Controller) ServiceAddresses(mesh string) map[string][]netip.AddrPort {
	return (*c.addrs.current.Load())[mesh]
}

// OnServiceAddresses registers fn to be called after what ServiceAddresses
// returns changed (once the caches are filled, and after every change of
// a Service or Namespace that moves an address). fn runs on the
// controller's goroutine and must not block: give it something like a
// non-blocking send or the xDS server's Changed. Safe for concurrent use.
func (c *Controller) OnServiceAddresses(fn func()) {
	c.addrs.mu.Lock()
	defer c.addrs.mu.Unlock()
	c.addrs.listeners = append(c.addrs.listeners, fn)
}
