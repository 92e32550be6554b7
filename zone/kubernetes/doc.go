// Package kubernetes holds the rules of a zone on Kubernetes, as pure
// functions of Kubernetes objects: which pods are in the mesh, the
// Dataplane each pod gets, and the service-upstream annotations of
// Services; and the Controller that watches Pods, Services and Namespaces,
// applies those rules and writes what they return. It never imports
// package zone.
//
// # Mesh membership
//
// A pod is in the mesh when its namespace is labelled
// atoll.io/sidecar-injection: enabled, or the pod itself is annotated
// atoll.io/sidecar-injection: enabled. A pod annotated
// atoll.io/sidecar-injection: disabled stays out of a mesh namespace; any
// other value is a problem. The mesh is the pod's atoll.io/mesh annotation,
// else its namespace's, else "default"; it must be a valid resource name
// (a DNS label).
//
// # Pods → Dataplanes
//
// A pod in the mesh that has an IP, is not terminating and has not
// finished (phase Succeeded or Failed) gets a Dataplane at its pod IP in
// its mesh, with the labels atoll.io/origin: zone, atoll.io/zone: <zone>
// and k8s.atoll.io/namespace: <namespace>. Which one depends on
// atoll.io/gateway:
//
//   - "enabled": a delegated gateway (an ingress controller such as Kong):
//     networking.gateway.type DELEGATED and no inbounds. Its one
//     atoll.io/service tag names the first Service selecting the pod that
//     has a TCP port (Services with a ClusterIP before headless ones, each
//     by name), at its lowest TCP port:
//     <service>_<namespace>_svc_<port>. With no such Service there is no
//     Dataplane, and a problem.
//   - absent: a workload, with one inbound per TCP port of each Service
//     selecting the pod, on the pod port the Service sends to (targetPort:
//     a number, or the name of a container port, sidecar containers
//     included). An inbound is ready only while the pod's Ready condition
//     is True. A named targetPort no container declares gets no inbound,
//     and a problem. A pod port has one inbound: Services are taken with
//     a ClusterIP first, then headless ones, each by name, their ports as
//     listed, and the first to reach a pod port has it. A later Service
//     port on the same pod port gets no inbound and a problem, except for
//     a headless Service (a StatefulSet's governing Service beside its
//     client Service is common and needs no change). A pod no Service
//     selects gets no Dataplane.
//   - any other value: no Dataplane, and a problem naming the allowed
//     value. A pod annotated as a gateway but not in the mesh has no
//     sidecar: no Dataplane, and a problem.
//
// Tags of an inbound or a gateway: atoll.io/service, k8s.atoll.io/namespace,
// k8s.atoll.io/service-name (the Service), atoll.io/zone, atoll.io/protocol
// from the Service port's appProtocol (tcp, http, http2, grpc,
// kubernetes.io/h2c), and the pod's labels that are valid tags, except
// keys under atoll.io/ and *.atoll.io/ and labels that differ per pod of a
// workload (pod-template-hash, controller-revision-hash,
// statefulset.kubernetes.io/pod-name, apps.kubernetes.io/pod-index, job
// labels), which would split the service per pod in the ZoneIngress.
//
// A Service selects a pod when it is in the pod's namespace, is not of
// type ExternalName, and has a non-empty selector the pod's labels match.
//
// # Dataplane names
//
// The Dataplane of pod P in namespace N is named "<P>-<N>-<hash>" (see
// DataplaneName): a DNS label, as every resource name is. Characters a
// label may not hold (the dots of a pod name) become '-', the readable
// part is cut to 54 characters, and hash is 8 base32 characters of
// SHA-256("N/P"), which keeps pods apart that "<P>-<N>" alone would not
// (pod a-b in c, pod a in b-c). Pod kong-0 in namespace kong becomes
// kong-0-kong-<hash>, and on the global kong-0-kong-<hash>.<zone>.
//
// # Service-upstream
//
// Every Service in a mesh namespace, except ExternalName Services and those
// annotated atoll.io/ignore: "true", gets
// ingress.kubernetes.io/service-upstream: "true" and
// nginx.ingress.kubernetes.io/service-upstream: "true", so the ingress
// controller sends to the Service's ClusterIP and the gateway's sidecar
// routes it. The zone only adds an annotation that is missing: a value
// the user set, "false" included, stays. An ExternalName Service pointing
// at a .mesh name (backend.mesh, or backend.default.svc.80.mesh for a
// Service of another zone) needs nothing from the zone: the cluster's DNS
// forwards the mesh domain to the zone, which answers with the VIP.
//
// # ClusterIPs
//
// Service-upstream makes ingress controllers connect to Service
// ClusterIPs, so the gateway's sidecar needs a listener on each. The
// Services that have them (ServiceAddressesFor) are those of mesh
// namespaces (labelled atoll.io/sidecar-injection: enabled; their mesh is
// the namespace's atoll.io/mesh annotation, else "default"), not of type
// ExternalName, not headless and not annotated atoll.io/ignore: "true":
// each ClusterIP (spec.clusterIPs, IPv4 and IPv6) with each TCP port, by
// the service name the inbounds of the Service's pods are tagged with
// (<service>_<namespace>_svc_<port>). The controller keeps them from its
// Service and Namespace caches, recomputed once per burst of changes, and
// serves them with Controller.ServiceAddresses (a map read);
// Controller.OnServiceAddresses registers a function called after they
// change. Give both to the zone's xDS server (xds.Config.ServiceAddresses
// and Server.Changed).
//
// # Problems
//
// Problems carry a reason (InvalidAnnotation, GatewayNotInMesh, NoService,
// UnresolvedTargetPort, InboundPortConflict, InvalidDataplane) and a
// message saying what to change; the controller reports them as Events on
// the Pod.
//
// # The controller
//
// Controller.Watch fills shared informers for Pods, Services and
// Namespaces (no periodic resync: every change arrives as an event) and
// keeps them current; every replica of a zone runs it. Controller.Lead,
// run only by the replica that leads (see Election), waits for those
// caches, queues every Service, then reconciles
// every pod once: it writes the Dataplanes that differ from the store's
// and deletes the zone Dataplanes of Kubernetes pods that are gone (those
// labelled atoll.io/origin: zone and k8s.atoll.io/namespace that no pod
// maps to; Dataplanes registered through the API have no namespace label
// and are left alone). It then follows changes through one rate-limited
// workqueue: a change of a pod queues the pod, a change of a Service or a
// Namespace queues every pod of the namespace (those a Service selects
// now and those it selected before). One worker takes up to
// store.MaxBatch queued pods at a time and writes their differences in
// one Apply; a failed Apply queues them again with backoff. The queue
// lives for one term: when Lead's context ends it is shut down, changes
// are dropped until the next term, which reconciles everything again.
// Controller.Run is Watch and Lead together, for a zone of one replica.
//
// A pod's problems become Warning Events on the Pod, only when its set of
// problems changes. Services of mesh namespaces get the service-upstream
// annotations by a merge patch carrying the resourceVersion; on a
// conflict the patch is computed again from the fresh Service.
//
// Controller.Owners gives the owner reference of a Dataplane's pod: pass
// it to crdstore.Config.Owners so a pod owns its Dataplane object and
// Kubernetes deletes the two together, even while the zone is down.
//
// # Leader election
//
// Election runs a function only while this replica holds a Lease
// (client-go's leader election), and campaigns again after losing it.
// The function's context ends when a renewal fails for RenewDeadline,
// before another replica may take the Lease (LeaseDuration); on a clean
// stop the Lease is released, but only once the function has returned,
// so two replicas never write at once and a follower takes over at once.
//
//	e, err := kubernetes.NewElection(kubernetes.ElectionConfig{
//		Client: leaseClient, Namespace: "atoll-system", Name: "atoll-zone-zone-1",
//		Identity: id, // kubernetes.NewIdentity()
//		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
//	})
//	...
//	go c.Watch(ctx)
//	err = e.Run(ctx, c.Lead) // Lead runs in each term this replica leads
//
// Build the client with NewClientset: it raises client-go's default rate
// limit (5 requests per second, bursts of 10, minutes of Service patches
// and Events for 2,000 pods) to DefaultQPS and DefaultBurst.
//
//	client, err := kubernetes.NewClientset(restConfig)
//	...
//	c, err := kubernetes.NewController(kubernetes.Config{
//		Client: client, Store: st, Zone: "zone-1", Log: log,
//	})
//	...
//	err = c.Run(ctx) // until ctx ends
//
// # Usage of the rules
//
//	dp, problems := kubernetes.DataplaneFor(kubernetes.Input{
//		Zone: "zone-1", Namespace: ns, Pod: pod, Services: services,
//	})
//	for _, p := range problems {
//		recorder.Event(pod, corev1.EventTypeWarning, p.Reason, p.Message)
//	}
//	if dp == nil {
//		// delete the pod's Dataplane, if it has one
//	}
//
//	if patch, ok := kubernetes.ServiceUpstreamPatch(svc, kubernetes.NamespaceInMesh(ns)); ok {
//		_, err := client.CoreV1().Services(svc.Namespace).Patch(ctx, svc.Name,
//			types.MergePatchType, patch, metav1.PatchOptions{})
//		...
//	}
package kubernetes
