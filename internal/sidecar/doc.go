// Package sidecar is `atoll sidecar`, the process of the atoll-sidecar
// container the zone's webhook injects into a pod of the mesh.
//
// Run composes three parts, in this order:
//
//   - the DNS proxy (dnsproxy) on 127.0.0.1:<dns port>, and on
//     [::1]:<dns port> too when the pod has IPv6 loopback: names in the mesh
//     domain go to the zone's DNS, every other name to the first nameserver
//     of the pod's resolv.conf. The transparent proxy redirects the pod's
//     port 53 there;
//   - the xDS relay (xdsrelay) on the Unix socket <run dir>/xds.sock: it
//     forwards Envoy's streams to the zone's xDS server with the pod's
//     current ServiceAccount token;
//   - Envoy (envoy), bootstrapped from <run dir>/envoy.json (written
//     atomically; zone/xds.SidecarBootstrap) with node.id
//     <mesh>.<zone/kubernetes.DataplaneName(namespace, pod)>, the name the
//     zone gives the pod's Dataplane.
//
// Every setting is checked, the DNS address resolved, the token read and
// Envoy's binary found before anything starts; an error names the flag
// and environment variable to fix (Settings). When Run's context ends,
// everything keeps serving for the drain duration (the application is
// finishing its requests, which leave through Envoy), then Envoy is
// stopped, then the relay and the DNS proxy, and Run returns nil. Envoy
// exiting by itself ends Run with an *envoy.ExitError (its ExitCode is the
// process's exit code), so the kubelet restarts the container.
//
//	cfg := sidecar.Default()
//	cfg.PodName, cfg.PodNamespace = "kong-7d9", "kong"
//	cfg.XDSAddress, cfg.DNSAddress = "atoll-zone.atoll-system.svc:5678", "atoll-zone.atoll-system.svc:53"
//	err := cfg.Validate()
//	err = sidecar.Run(ctx, cfg, logger, os.Stdout, os.Stderr)
package sidecar
