// Package inject decides how the zone's mutating admission webhook changes
// a pod, as a pure function (Mutate) of the zone's Config, the pod and its
// namespace, and serves it as an AdmissionReview v1 handler (Handler).
//
// A pod in the mesh (kubernetes.MembershipOf) gets:
//
//   - the init container atoll-init, which runs `atoll transparent-proxy
//     install`: outbound TCP to Envoy's port 15001, DNS to 15053, and, for a
//     workload, inbound TCP to 15006 except Envoy's admin port 9901 and the
//     ports of atoll.io/exclude-inbound-ports. A delegated gateway
//     (atoll.io/gateway: enabled) keeps its inbound traffic:
//     --redirect-inbound=false;
//   - the container atoll-sidecar (`atoll sidecar`, Envoy as UID 5678),
//     told its pod, mesh, zone, the zone's xDS address and where its token is;
//   - the projected ServiceAccount token volume atoll-token (audience
//     atoll-xds) the sidecar presents to the zone, and the ServiceAccount
//     "default" when the pod names none (as Kubernetes' ServiceAccount
//     admission plugin does before webhooks run);
//   - the annotation atoll.io/injected: "true".
//
// A pod already injected is left alone, so admitting it again changes
// nothing; atoll.io/sidecar-injection: disabled opts a pod out; an invalid
// annotation is denied with a message naming it, its value and the values
// allowed.
//
// Server serves Handler over HTTPS at Path, with a certificate from files
// (followed on disk) or a CA and certificate it generates and keeps, and
// keeps the generated CA in the caBundle of the MutatingWebhookConfiguration
// it is told (WebhookConfiguration is the recommended one).
//
// The package never imports package zone.
package inject
