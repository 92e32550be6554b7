package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	k8s "k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

// Store is the part of a store the controller writes Dataplanes to.
type Store interface {
	List(ctx context.Context, t resource.Type, mesh string) ([]*resource.Resource, error)
	Apply(ctx context.Context, ops []store.Op) error
}

// Config configures a Controller.
type Config struct {
	// Client reads Pods, Services and Namespaces, patches Services and
	// creates Events. Build it with NewClientset for sensible rate limits.
	Client k8s.Interface
	// Store receives the zone's Dataplanes.
	Store Store
	// Zone is the zone's name, written as the atoll.io/zone label and tag.
	Zone string
	// Log defaults to a logger that discards.
	Log *slog.Logger
}

// queueKey is one unit of work: the pod or the Service named by
// namespace/name.
type queueKey struct {
	service   bool
	namespace string
	name      string
}

// Controller keeps one Dataplane per pod in the mesh in the store, reports
// the pods' problems as Events, and adds the service-upstream annotations
// to the Services of mesh namespaces.
type Controller struct {
	cfg Config
	log *slog.Logger
	// queue is the current term's (see Lead); nil while not leading, when
	// changes are dropped: the next term starts with a full reconcile.
	queue atomic.Pointer[workqueue.TypedRateLimitingInterface[queueKey]]

	factory    informers.SharedInformerFactory
	pods       listersv1.PodLister
	services   listersv1.ServiceLister
	namespaces listersv1.NamespaceLister
	synced     []cache.InformerSynced

	// Owned by the one worker of the current term (and by the first
	// reconcile before it).
	// written is what the store holds of the controller's Dataplanes,
	// by name; reported is the problems last reported per pod.
	written  map[string]*resource.Resource
	reported map[queueKey]string

	// For Ready: cachesSynced once the informers' caches are filled;
	// leading while Lead runs; reconciled once its first reconcile has
	// made the store match the pods.
	cachesSynced, leading, reconciled atomic.Bool
	// problem is the last error that holds the current wait of Ready back
	// (a cache that cannot list, a refused write), cleared when it ends.
	problem atomic.Pointer[error]

	// owners maps the name of each Dataplane about to be written to its
	// pod, for Owners.
	ownersMu sync.Mutex
	owners   map[string]metav1.OwnerReference

	// addrs is the ClusterIPs of mesh Services (clusterips.go).
	addrs *addressView
}

// NewController returns a controller for cfg; Run starts it.
func NewController(cfg Config) (*Controller, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("kubernetes controller: Config.Client is nil: pass a clientset (see NewClientset)")
	case cfg.Store == nil:
		return nil, errors.New("kubernetes controller: Config.Store is nil: pass the zone's store")
	case cfg.Zone == "":
		return nil, errors.New("kubernetes controller: Config.Zone is empty: pass the zone's name")
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// No resync: every change arrives as an event, and a periodic
	// recompute of thousands of pods would only burn CPU.
	factory := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
		informers.WithTransform(stripManagedFields))
	c := &Controller{
		cfg:      cfg,
		log:      log.With("component", "kubernetes-controller"),
		factory:  factory,
		written:  map[string]*resource.Resource{},
		reported: map[queueKey]string{},
		owners:   map[string]metav1.OwnerReference{},
		addrs:    newAddressView(),
	}
	podInformer := factory.Core().V1().Pods()
	serviceInformer := factory.Core().V1().Services()
	namespaceInformer := factory.Core().V1().Namespaces()
	c.pods = podInformer.Lister()
	c.services = serviceInformer.Lister()
	c.namespaces = namespaceInformer.Lister()
	handlers := []struct {
		informer cache.SharedIndexInformer
		changed  func(namespace, name string)
	}{
		{podInformer.Informer(), func(ns, name string) { c.enqueue(queueKey{namespace: ns, name: name}) }},
		{serviceInformer.Informer(), c.serviceChanged},
		{namespaceInformer.Informer(), func(_, name string) { c.namespaceChanged(name) }},
	}
	for _, h := range handlers {
		changed := h.changed
		on := func(obj any) {
			key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
			if err != nil {
				c.log.Warn("ignoring an object without a key", "error", err)
				return
			}
			ns, name, err := cache.SplitMetaNamespaceKey(key)
			if err != nil {
				c.log.Warn("ignoring an object with a bad key", "key", key, "error", err)
				return
			}
			changed(ns, name)
		}
		if err := h.informer.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
			err = explainForbidden(err)
			c.problem.Store(&err)
			cache.DefaultWatchErrorHandler(ctx, r, err)
		}); err != nil {
			return nil, fmt.Errorf("kubernetes controller: adding a watch error handler: %w", err)
		}
		if _, err := h.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    on,
			UpdateFunc: func(_, obj any) { on(obj) },
			DeleteFunc: on,
		}); err != nil {
			return nil, fmt.Errorf("kubernetes controller: adding an event handler: %w", err)
		}
		c.synced = append(c.synced, h.informer.HasSynced)
	}
	if err := c.watchAddresses(serviceInformer.Informer(), namespaceInformer.Informer()); err != nil {
		return nil, fmt.Errorf("kubernetes controller: adding an event handler: %w", err)
	}
	return c, nil
}

// stripManagedFields drops what the controller never reads and would
// otherwise keep in memory for every cached object.
func stripManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// serviceChanged queues the Service and every pod of its namespace: the
// pods it selects now and those it selected before.
func (c *Controller) serviceChanged(namespace, name string) {
	c.enqueue(queueKey{service: true, namespace: namespace, name: name})
	c.queuePods(namespace)
}

// namespaceChanged queues every pod and Service of the namespace.
func (c *Controller) namespaceChanged(namespace string) {
	c.queuePods(namespace)
	services, err := c.services.Services(namespace).List(labels.Everything())
	if err != nil {
		c.log.Warn("listing services from the cache", "namespace", namespace, "error", err)
		return
	}
	for _, svc := range services {
		c.enqueue(queueKey{service: true, namespace: namespace, name: svc.Name})
	}
}

func (c *Controller) queuePods(namespace string) {
	pods, err := c.pods.Pods(namespace).List(labels.Everything())
	if err != nil {
		c.log.Warn("listing pods from the cache", "namespace", namespace, "error", err)
		return
	}
	for _, pod := range pods {
		c.enqueue(queueKey{namespace: namespace, name: pod.Name})
	}
}

// enqueue queues k for the current term, if any.
func (c *Controller) enqueue(k queueKey) {
	if q := c.queue.Load(); q != nil {
		(*q).Add(k)
	}
}

// Run watches Pods, Services and Namespaces and writes until ctx ends: it
// is Watch and Lead together, for a zone of one replica.
func (c *Controller) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.Watch(ctx) })
	g.Go(func() error { return c.Lead(ctx) })
	return g.Wait()
}

// Watch fills the caches of Pods, Services and Namespaces and keeps them
// current until ctx ends. Every replica of a zone watches, so that its
// caches are warm when it comes to lead.
func (c *Controller) Watch(ctx context.Context) error {
	c.factory.Start(ctx.Done())
	defer c.factory.Shutdown()
	ctx, cancel := context.WithCancel(ctx)
	var addresses sync.WaitGroup
	defer addresses.Wait()
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return nil // ctx ended
	}
	c.cachesSynced.Store(true)
	c.problem.Store(nil)
	addresses.Go(func() { c.keepAddresses(ctx) })
	<-ctx.Done()
	return nil
}

// Lead writes until ctx ends: once Watch has filled the caches it
// reconciles the store with every pod, deleting the Dataplanes of pods
// that are gone, then follows changes. Only the replica that leads the
// zone runs it; it may run again for a later term, never twice at once.
func (c *Controller) Lead(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("kubernetes controller: the caches of Pods, Services and Namespaces did not fill")
	}
	// A queue per term: the one of a term that ended is shut down, and the
	// Dataplanes written since by another replica are read again.
	q := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[queueKey](),
		workqueue.TypedRateLimitingQueueConfig[queueKey]{Name: "atoll-zone"})
	c.queue.Store(&q)
	c.leading.Store(true)
	defer func() {
		c.queue.Store(nil)
		q.ShutDown()
		c.leading.Store(false)
		c.reconciled.Store(false)
	}()
	// Services are patched from the queue: queue them all, as changes
	// before the term were dropped.
	services, err := c.services.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("kubernetes controller: listing services from the cache: %w", err)
	}
	for _, svc := range services {
		q.Add(queueKey{service: true, namespace: svc.Namespace, name: svc.Name})
	}
	c.written = map[string]*resource.Resource{}
	c.log.Info("caches filled, reconciling every pod")
	if err := c.firstReconcile(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	c.reconciled.Store(true)
	c.problem.Store(nil)
	c.log.Info("watching pods", "zone", c.cfg.Zone, "dataplanes", len(c.written))
	stop := context.AfterFunc(ctx, q.ShutDown)
	defer stop()
	for c.processBatch(ctx, q) {
	}
	return nil
}

// Ready returns nil once the caches are filled and, while leading, the
// store holds the Dataplanes of every pod the caches held when the term
// started; an error saying what is awaited before.
func (c *Controller) Ready() error {
	var waiting string
	switch {
	case !c.cachesSynced.Load():
		waiting = "waiting for the Pod, Service and Namespace caches to fill"
	case c.leading.Load() && !c.reconciled.Load():
		waiting = "leading: waiting for the first reconcile of the pods' Dataplanes"
	default:
		return nil
	}
	if p := c.problem.Load(); p != nil {
		return fmt.Errorf("%s: %w", waiting, *p)
	}
	return errors.New(waiting)
}

// firstReconcile retries the full reconcile with backoff until it
// succeeds or ctx ends: the store may not be ready yet.
func (c *Controller) firstReconcile(ctx context.Context) error {
	delay := 100 * time.Millisecond
	for {
		err := c.reconcileAll(ctx)
		if err == nil {
			return nil
		}
		err = explainForbidden(err)
		c.problem.Store(&err)
		c.log.Warn("reconciling all pods failed, retrying", "in", delay, "error", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubernetes controller: first reconcile: %w", err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// reconcileAll computes the Dataplane of every pod and makes the store's
// zone Dataplanes from Kubernetes exactly those.
func (c *Controller) reconcileAll(ctx context.Context) error {
	pods, err := c.pods.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("listing pods from the cache: %w", err)
	}
	want := map[resource.Key]*resource.Resource{}
	for _, pod := range pods {
		dp, problems := c.compute(pod.Namespace, pod.Name)
		c.report(ctx, queueKey{namespace: pod.Namespace, name: pod.Name}, pod, problems)
		if dp != nil {
			want[dp.Key()] = dp
		}
	}
	stored, err := c.cfg.Store.List(ctx, resource.DataplaneType, "")
	if err != nil {
		return fmt.Errorf("listing Dataplanes: %w", err)
	}
	var ops []store.Op
	for _, dp := range stored {
		if !ours(dp) {
			continue
		}
		switch w, ok := want[dp.Key()]; {
		case !ok:
			ops = append(ops, store.Op{Delete: dp.Key()})
		case same(w, dp):
			delete(want, dp.Key())
			c.written[dp.Meta.Name] = w
		}
	}
	for _, dp := range want {
		ops = append(ops, store.Op{Put: dp})
	}
	if err := c.apply(ctx, ops); err != nil {
		return err
	}
	for _, dp := range want {
		c.written[dp.Meta.Name] = dp
	}
	return nil
}

// ours reports whether dp is a Dataplane this controller writes: from the
// zone and from a Kubernetes namespace.
func ours(dp *resource.Resource) bool {
	_, ok := dp.Meta.Labels[resource.NamespaceLabel]
	return ok && dp.Meta.Labels[resource.OriginLabel] == resource.OriginZone
}

// same reports whether a and b have the same key, labels and spec.
func same(a, b *resource.Resource) bool {
	return a.Key() == b.Key() && maps.Equal(a.Meta.Labels, b.Meta.Labels) && proto.Equal(a.Spec, b.Spec)
}

// compute returns the Dataplane and problems of the pod namespace/name as
// the caches have it; a pod the cache lacks has neither.
func (c *Controller) compute(namespace, name string) (*resource.Resource, []Problem) {
	pod, err := c.pods.Pods(namespace).Get(name)
	if err != nil {
		c.ownersMu.Lock()
		delete(c.owners, DataplaneName(namespace, name))
		c.ownersMu.Unlock()
		return nil, nil
	}
	ns, err := c.namespaces.Get(namespace)
	if err != nil {
		ns = nil
	}
	services, err := c.services.Services(namespace).List(labels.Everything())
	if err != nil {
		services = nil
	}
	dp, problems := DataplaneFor(Input{Zone: c.cfg.Zone, Namespace: ns, Pod: pod, Services: services})
	c.ownersMu.Lock()
	if dp != nil {
		c.owners[dp.Meta.Name] = metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}
	} else {
		delete(c.owners, DataplaneName(namespace, name))
	}
	c.ownersMu.Unlock()
	return dp, problems
}

// Owners returns the owner reference of the pod r was made from, or nil
// when r is not a Dataplane this controller wrote. Give it to a store
// that keeps owners (crdstore.Config.Owners) so Kubernetes deletes a
// pod's Dataplane with the pod even when the zone is down.
func (c *Controller) Owners(r *resource.Resource) []metav1.OwnerReference {
	if r.Meta.Type != resource.DataplaneType || !ours(r) {
		return nil
	}
	c.ownersMu.Lock()
	defer c.ownersMu.Unlock()
	if o, ok := c.owners[r.Meta.Name]; ok {
		return []metav1.OwnerReference{o}
	}
	return nil
}

// processBatch takes what is queued (up to store.MaxBatch keys), patches
// the Services, and writes the pods' Dataplanes in one Apply. It returns
// false once the queue is shut down.
func (c *Controller) processBatch(ctx context.Context, q workqueue.TypedRateLimitingInterface[queueKey]) bool {
	first, shutdown := q.Get()
	if shutdown {
		return false
	}
	keys := []queueKey{first}
	// Only this goroutine takes from the queue, so Get does not block
	// while Len is positive.
	for len(keys) < store.MaxBatch && q.Len() > 0 {
		k, shutdown := q.Get()
		if shutdown {
			break
		}
		keys = append(keys, k)
	}
	defer func() {
		for _, k := range keys {
			q.Done(k)
		}
	}()

	var ops []store.Op
	var podKeys []queueKey
	next := map[string]*resource.Resource{}
	for _, k := range keys {
		if k.service {
			if err := c.syncService(ctx, k.namespace, k.name); err != nil {
				c.log.Warn("adding service-upstream annotations failed, retrying",
					"namespace", k.namespace, "service", k.name, "error", err)
				q.AddRateLimited(k)
			} else {
				q.Forget(k)
			}
			continue
		}
		podKeys = append(podKeys, k)
		dp, problems := c.compute(k.namespace, k.name)
		pod, _ := c.pods.Pods(k.namespace).Get(k.name)
		c.report(ctx, k, pod, problems)
		name := DataplaneName(k.namespace, k.name)
		old := c.written[name]
		next[name] = dp
		if old != nil && (dp == nil || old.Key() != dp.Key()) {
			ops = append(ops, store.Op{Delete: old.Key()})
		}
		if dp != nil && (old == nil || !same(old, dp)) {
			ops = append(ops, store.Op{Put: dp})
		}
	}
	if err := c.apply(ctx, ops); err != nil {
		c.log.Warn("writing Dataplanes failed, retrying", "pods", len(podKeys), "error", err)
		for _, k := range podKeys {
			q.AddRateLimited(k)
		}
		return true
	}
	for name, dp := range next {
		if dp == nil {
			delete(c.written, name)
		} else {
			c.written[name] = dp
		}
	}
	for _, k := range podKeys {
		q.Forget(k)
	}
	return true
}

func (c *Controller) apply(ctx context.Context, ops []store.Op) error {
	if len(ops) == 0 {
		return nil
	}
	if err := c.cfg.Store.Apply(ctx, ops); err != nil {
		return fmt.Errorf("writing %d Dataplane changes: %w", len(ops), err)
	}
	c.log.Debug("wrote Dataplanes", "changes", len(ops))
	return nil
}

// syncService adds the service-upstream annotations the Service lacks.
// The patch carries the resourceVersion it was computed from; on a
// conflict it is computed again from the fresh Service.
func (c *Controller) syncService(ctx context.Context, namespace, name string) error {
	svc, err := c.services.Services(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	ns, err := c.namespaces.Get(namespace)
	if err != nil {
		return nil // namespace gone: its Services go with it
	}
	inMesh := NamespaceInMesh(ns)
	api := c.cfg.Client.CoreV1().Services(namespace)
	for attempt := 0; ; attempt++ {
		patch, ok := ServiceUpstreamPatch(svc, inMesh)
		if !ok {
			return nil
		}
		_, err := api.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if !apierrors.IsConflict(err) || attempt >= 4 {
			return fmt.Errorf("patching service %s/%s: %w", namespace, name, explainForbidden(err))
		}
		if svc, err = api.Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading service %s/%s again after a conflict: %w", namespace, name, err)
		}
	}
}

// report records problems of the pod as Events when they differ from
// those reported last.
func (c *Controller) report(ctx context.Context, k queueKey, pod *corev1.Pod, problems []Problem) {
	if pod == nil {
		delete(c.reported, k)
		return
	}
	sig := signature(problems)
	if c.reported[k] == sig {
		return
	}
	if err := c.emit(ctx, pod, problems); err != nil {
		c.log.Warn("reporting a pod's problems as Events failed",
			"namespace", pod.Namespace, "pod", pod.Name, "error", err)
		return
	}
	if sig == "" {
		delete(c.reported, k)
	} else {
		c.reported[k] = sig
	}
}
