// Package dnsproxy is the DNS proxy the sidecar runs inside an injected pod.
//
// The pod's transparent-proxy rules (internal/transparentproxy) redirect
// every query to port 53, UDP and TCP, to the proxy's port (15053). The
// proxy answers nothing itself: names in the mesh domain ("mesh", the
// domain itself included, case-insensitively) are relayed to the zone's DNS
// server, every other name to the pod's cluster DNS (the first nameserver
// of /etc/resolv.conf, see UpstreamFromResolvConf). A query is relayed over
// the transport its client used; a UDP answer that comes back truncated is
// asked again over TCP. The query (ID and question) is relayed unchanged;
// an upstream that fails or does not answer within Timeout yields SERVFAIL,
// and so does a query beyond MaxInFlight relayed queries, so a flood cannot
// exhaust the pod.
//
// The proxy's own queries to the cluster DNS go to port 53 as well, and the
// DNS redirection would send them back to the proxy, a loop. They are not
// redirected because the sidecar runs as the proxy UID (5678), whose traffic
// the rules leave alone: run the proxy in the sidecar container, never as
// another user.
//
//	cfg := dnsproxy.Default()
//	cfg.Mesh = "10.96.0.20:53" // the zone's DNS
//	cfg.Upstream, err = dnsproxy.UpstreamFromResolvConf("/etc/resolv.conf")
//	p, err := dnsproxy.New(cfg, logger) // binds UDP and TCP
//	err = p.Run(ctx)                    // serves until ctx ends
package dnsproxy
