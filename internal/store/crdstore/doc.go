// Package crdstore is a store.Store over the Kubernetes API: each atoll
// resource is a custom resource of group atoll.io, version v1alpha1, with
// the CRDs of charts/atoll/crds. A Kubernetes zone keeps its state here, so
// `kubectl get dataplanes -A` shows it and a zone restarted while the
// global is down still has its remote state.
//
// How a resource maps to an object:
//
//   - kind is the atoll type; the plural (dataplanes, meshes, ...) is the
//     registry's.
//   - name is the atoll name for types without a mesh, "<name>.<mesh>" for
//     mesh-scoped ones. atoll names and meshes are DNS labels, so the map
//     is 1:1 and always a valid object name.
//   - namespace is the store's home (Config.Namespace, the zone's system
//     namespace), except for a Dataplane labelled k8s.atoll.io/namespace:
//     it lives in that namespace, next to the Pod that may own it
//     (Config.Owners), so it is garbage-collected with the Pod.
//   - the body mirrors atoll's file format: mesh, labels, creationTime,
//     modificationTime and spec (protojson of the spec message) are
//     top-level fields. metadata.labels carries crd.atoll.io/home (which
//     store the object belongs to), crd.atoll.io/mesh and every atoll label
//     that is also a valid Kubernetes label.
//   - the version is the object's resourceVersion; Update and Delete send
//     it to the API server, which checks it.
//
// Kubernetes has no transactions, so Apply is not atomic here: see Apply.
//
// Usage:
//
//	cfg, _ := clientcmd.BuildConfigFromFlags("", kubeconfig)
//	cfg.QPS, cfg.Burst = 1000, 2000
//	dyn, _ := dynamic.NewForConfig(cfg)
//	if err := crdstore.InstallCRDs(ctx, dyn, "charts/atoll/crds"); err != nil { ... } // or helm install
//	st, err := crdstore.New(crdstore.Config{Client: dyn, Namespace: "atoll-system"})
//	if err != nil { ... }
//	defer st.Close()
//	mesh, err := st.Get(ctx, resource.Key{Type: resource.MeshType, Name: "default"})
package crdstore
