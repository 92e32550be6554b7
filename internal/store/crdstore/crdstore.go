package crdstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

const (
	// fieldManager names atoll's writes in managedFields.
	fieldManager = "atoll"
	// applyParallelism is how many requests Apply has in flight. A zone's
	// first reconcile of 2,000 pods is one Apply: against a kube-apiserver
	// on two cores 8 in flight wrote ~170 Dataplanes per second, 32 wrote
	// ~330 and 64 no more (the API server's pace), so 32.
	applyParallelism = 32
	// applyAttempts bounds the read-write retries of one Apply put that
	// keeps losing races with other writers.
	applyAttempts = 5
	// listPage is the page size of List.
	listPage = 500
)

// Config configures a Store.
type Config struct {
	// Client talks to the API server. Give its rest.Config a QPS and
	// burst for the load (client-go's default of 5 QPS makes an Apply of
	// a few hundred resources take a minute).
	Client dynamic.Interface
	// Namespace is the store's home: where every object lives except
	// Dataplanes labelled k8s.atoll.io/namespace (those live in that
	// namespace, next to their Pod). A store sees only objects labelled
	// crd.atoll.io/home=<Namespace>.
	Namespace string
	// Owners, when set, returns the owner references of r's object, set
	// on every create and update: a Kubernetes zone makes a Pod own the
	// Dataplane made from it, so the garbage collector deletes the
	// Dataplane with the Pod. An owner must live in the object's namespace.
	Owners func(r *resource.Resource) []metav1.OwnerReference
	// Logger reports objects the store skips because it cannot decode
	// them. Defaults to slog.Default().
	Logger *slog.Logger
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Client == nil {
		return errors.New("crdstore: Client is required")
	}
	if msgs := validation.IsDNS1123Label(c.Namespace); len(msgs) > 0 {
		return fmt.Errorf("crdstore: namespace %q is invalid: %s", c.Namespace, strings.Join(msgs, "; "))
	}
	return nil
}

// Store keeps atoll resources as custom resources of the Kubernetes API.
type Store struct {
	client dynamic.Interface
	home   string
	owners func(*resource.Resource) []metav1.OwnerReference
	log    *slog.Logger
	now    func() time.Time
	// watchTimeout, when set, asks the API server to end each watch
	// request after so many seconds (tests: resuming a watch).
	watchTimeout *int64
	// watchBuffer is how many events a watcher may lag behind.
	watchBuffer int

	// ctx ends every watch on Close.
	ctx    context.Context
	cancel context.CancelFunc
}

var _ store.Store = (*Store)(nil)

// New returns a store over the API server cfg.Client talks to. The CRDs of
// charts/atoll/crds must be installed (see InstallCRDs).
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Store{
		client:      cfg.Client,
		home:        cfg.Namespace,
		owners:      cfg.Owners,
		log:         log.With("component", "crdstore", "namespace", cfg.Namespace),
		now:         time.Now,
		watchBuffer: watchBuffer,
		ctx:         ctx,
		cancel:      cancel,
	}, nil
}

// Close ends every watch.
func (s *Store) Close() error {
	s.cancel()
	return nil
}

// namespaceOf is where r's object lives.
func (s *Store) namespaceOf(r *resource.Resource) string {
	if r.Meta.Type == resource.DataplaneType {
		if ns := r.Meta.Labels[resource.NamespaceLabel]; ns != "" {
			return ns
		}
	}
	return s.home
}

// spread reports whether objects of type t may live outside the home
// namespace, so that finding one by key takes a cluster-wide query.
func spread(t resource.Type) bool { return t == resource.DataplaneType }

func (s *Store) selector(mesh string) string {
	set := labels.Set{HomeLabel: s.home}
	if mesh != "" {
		set[MeshLabel] = mesh
	}
	return labels.SelectorFromSet(set).String()
}

// resourceIn returns the client for type t in namespace ns ("" for every
// namespace).
func (s *Store) resourceIn(t resource.Type, ns string) (dynamic.ResourceInterface, error) {
	gvr, err := GVR(t)
	if err != nil {
		return nil, err
	}
	if ns == "" {
		return s.client.Resource(gvr), nil
	}
	return s.client.Resource(gvr).Namespace(ns), nil
}

// locate returns the object of key, wherever it lives.
func (s *Store) locate(ctx context.Context, key resource.Key) (*unstructured.Unstructured, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if !spread(key.Type) {
		ri, err := s.resourceIn(key.Type, s.home)
		if err != nil {
			return nil, err
		}
		obj, err := ri.Get(ctx, ObjectName(key), metav1.GetOptions{})
		if err != nil {
			return nil, mapErr(key, err, 0)
		}
		if obj.GetLabels()[HomeLabel] != s.home {
			return nil, store.NotFound(key)
		}
		return obj, nil
	}
	ri, err := s.resourceIn(key.Type, "")
	if err != nil {
		return nil, err
	}
	list, err := ri.List(ctx, metav1.ListOptions{
		LabelSelector: s.selector(""),
		FieldSelector: fields.OneTermEqualSelector("metadata.name", ObjectName(key)).String(),
	})
	if err != nil {
		return nil, mapErr(key, err, 0)
	}
	switch len(list.Items) {
	case 0:
		return nil, store.NotFound(key)
	case 1:
		return &list.Items[0], nil
	default:
		var where []string
		for _, o := range list.Items {
			where = append(where, o.GetNamespace())
		}
		return nil, fmt.Errorf("%s is stored in several namespaces (%s): delete all but one", key, strings.Join(where, ", "))
	}
}

// Get implements store.Reader.
func (s *Store) Get(ctx context.Context, key resource.Key) (*resource.Resource, error) {
	obj, err := s.locate(ctx, key)
	if err != nil {
		return nil, err
	}
	return fromObject(key.Type, obj)
}

// List implements store.Reader. Objects it cannot decode (edited by hand
// past the schema) are logged and left out, so one bad object does not
// hide the rest.
func (s *Store) List(ctx context.Context, t resource.Type, mesh string) ([]*resource.Resource, error) {
	ns := s.home
	if spread(t) {
		ns = ""
	}
	ri, err := s.resourceIn(t, ns)
	if err != nil {
		return nil, err
	}
	out := []*resource.Resource{}
	opts := metav1.ListOptions{LabelSelector: s.selector(mesh), Limit: listPage}
	for {
		list, err := ri.List(ctx, opts)
		if err != nil {
			return nil, mapErr(resource.Key{Type: t, Mesh: mesh}, err, 0)
		}
		for i := range list.Items {
			r, err := fromObject(t, &list.Items[i])
			if err != nil {
				s.log.Warn("skipping an object the store cannot read", "error", err)
				continue
			}
			out = append(out, r)
		}
		if opts.Continue = list.GetContinue(); opts.Continue == "" {
			break
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Meta.Mesh != out[j].Meta.Mesh {
			return out[i].Meta.Mesh < out[j].Meta.Mesh
		}
		return out[i].Meta.Name < out[j].Meta.Name
	})
	return out, nil
}

// Create implements store.Writer. For Dataplanes, which may live in any
// namespace, the check that the key is free and the create are two
// requests: two writers creating one key at once in two namespaces could
// both succeed (a zone has one writer, its leader).
func (s *Store) Create(ctx context.Context, r *resource.Resource) (*resource.Resource, error) {
	key := r.Key()
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if spread(key.Type) {
		if _, err := s.locate(ctx, key); err == nil {
			return nil, store.AlreadyExists(key)
		} else if !store.IsNotFound(err) {
			return nil, err
		}
	}
	c := store.ForCreate(r, s.now())
	c.Meta.Version = ""
	return s.create(ctx, c)
}

func (s *Store) create(ctx context.Context, c *resource.Resource) (*resource.Resource, error) {
	ns := s.namespaceOf(c)
	obj, err := s.object(c, ns)
	if err != nil {
		return nil, err
	}
	ri, err := s.resourceIn(c.Meta.Type, ns)
	if err != nil {
		return nil, err
	}
	out, err := ri.Create(ctx, obj, metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil {
		return nil, mapErr(c.Key(), err, objectSize(obj))
	}
	return fromObject(c.Meta.Type, out)
}

// Update implements store.Writer. The version is the object's
// resourceVersion, which the API server checks.
func (s *Store) Update(ctx context.Context, r *resource.Resource) (*resource.Resource, error) {
	key := r.Key()
	old, err := s.locate(ctx, key)
	if err != nil {
		return nil, err
	}
	if old.GetResourceVersion() != r.Meta.Version {
		return nil, store.Conflict(key)
	}
	if ns := s.namespaceOf(r); ns != old.GetNamespace() {
		return nil, fmt.Errorf("%s lives in namespace %q, not %q: a Dataplane cannot move between namespaces: delete it and create it again", key, old.GetNamespace(), ns)
	}
	c := store.ForUpdate(r, &resource.Resource{Meta: resource.Meta{CreationTime: creationTime(old)}}, s.now())
	return s.update(ctx, c, old.GetNamespace())
}

func (s *Store) update(ctx context.Context, c *resource.Resource, ns string) (*resource.Resource, error) {
	obj, err := s.object(c, ns)
	if err != nil {
		return nil, err
	}
	ri, err := s.resourceIn(c.Meta.Type, ns)
	if err != nil {
		return nil, err
	}
	out, err := ri.Update(ctx, obj, metav1.UpdateOptions{FieldManager: fieldManager})
	if err != nil {
		return nil, mapErr(c.Key(), err, objectSize(obj))
	}
	return fromObject(c.Meta.Type, out)
}

// object renders c in namespace ns, with its owners.
func (s *Store) object(c *resource.Resource, ns string) (*unstructured.Unstructured, error) {
	obj, err := toObject(c, ns, s.home)
	if err != nil {
		return nil, err
	}
	if s.owners != nil {
		obj.SetOwnerReferences(s.owners(c))
	}
	return obj, nil
}

// creationTime is the atoll creation time of obj, zero when it has none.
func creationTime(obj *unstructured.Unstructured) time.Time {
	s, _, _ := unstructured.NestedString(obj.Object, "creationTime")
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Delete implements store.Writer. A version becomes a resourceVersion
// precondition, which the API server checks.
func (s *Store) Delete(ctx context.Context, key resource.Key, version string) error {
	obj, err := s.locate(ctx, key)
	if err != nil {
		return err
	}
	return s.delete(ctx, key, obj.GetNamespace(), version)
}

func (s *Store) delete(ctx context.Context, key resource.Key, ns, version string) error {
	ri, err := s.resourceIn(key.Type, ns)
	if err != nil {
		return err
	}
	opts := metav1.DeleteOptions{}
	if version != "" {
		opts.Preconditions = &metav1.Preconditions{ResourceVersion: &version}
	}
	if err := ri.Delete(ctx, ObjectName(key), opts); err != nil {
		return mapErr(key, err, 0)
	}
	return nil
}

// Apply implements store.Writer. Kubernetes has no transactions: Apply
// writes each resource with its own requests, several at a time, so a
// watcher sees the puts one by one and an Apply that fails half way leaves
// the resources written so far in place. Every put is idempotent, so
// applying the same ops again completes it. When one batch holds several
// ops for one key, only the last counts (as it would after a transaction).
// A put the API server refuses as too large is reported (IsTooLarge) after
// the other ops were written: Kubernetes does not tell its limit up front.
// Ops on Dataplanes are located with one List first when there are more
// than a transaction holds (placeAll), else one by one.
func (s *Store) Apply(ctx context.Context, ops []store.Op) error {
	last := make(map[resource.Key]int, len(ops))
	for i, op := range ops {
		key := op.Delete
		if op.Put != nil {
			key = op.Put.Key()
		}
		if err := checkKey(key); err != nil {
			return err
		}
		last[key] = i
	}
	where, err := s.placeAll(ctx, last)
	if err != nil {
		return err
	}
	now := s.now()
	var (
		mu       sync.Mutex
		tooLarge []error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(applyParallelism)
	for i, op := range ops {
		if op.Put != nil && last[op.Put.Key()] != i || op.Put == nil && last[op.Delete] != i {
			continue
		}
		g.Go(func() error {
			var err error
			switch {
			case op.Put != nil && where[op.Put.Meta.Type] != nil:
				err = s.applyPutPlaced(gctx, store.ForApply(op.Put, now), where[op.Put.Meta.Type])
			case op.Put != nil:
				err = s.applyPut(gctx, store.ForApply(op.Put, now))
			case where[op.Delete.Type] != nil:
				err = s.applyDeletePlaced(gctx, op.Delete, where[op.Delete.Type])
			default:
				err = s.applyDelete(gctx, op.Delete)
			}
			if store.IsTooLarge(err) {
				mu.Lock()
				tooLarge = append(tooLarge, err)
				mu.Unlock()
				return nil
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return errors.Join(tooLarge...)
}

func (s *Store) applyPut(ctx context.Context, c *resource.Resource) error {
	key := c.Key()
	ns := s.namespaceOf(c)
	for attempt := range applyAttempts {
		var old *unstructured.Unstructured
		var err error
		if attempt == 0 {
			old, err = s.locateIn(ctx, key, ns)
		} else {
			old, err = s.locate(ctx, key)
		}
		switch {
		case store.IsNotFound(err):
			c.Meta.Version = ""
			_, err = s.create(ctx, c)
			if store.IsAlreadyExists(err) {
				continue // created meanwhile: update it
			}
			return err
		case err != nil:
			return err
		case old.GetNamespace() != ns:
			// The put moves a Dataplane to another namespace.
			if err := s.delete(ctx, key, old.GetNamespace(), old.GetResourceVersion()); err != nil && !store.IsConflict(err) && !store.IsNotFound(err) {
				return err
			}
		default:
			c.Meta.Version = old.GetResourceVersion()
			_, err = s.update(ctx, c, ns)
			if store.IsConflict(err) || store.IsNotFound(err) {
				continue // changed or deleted meanwhile: read it again
			}
			return err
		}
	}
	return fmt.Errorf("applying %s: it changed under %d attempts in a row: retry the apply", key, applyAttempts)
}

func (s *Store) applyDelete(ctx context.Context, key resource.Key) error {
	obj, err := s.locate(ctx, key)
	if store.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.delete(ctx, key, obj.GetNamespace(), ""); err != nil && !store.IsNotFound(err) {
		return err
	}
	return nil
}

// objectSize is the encoded size of obj, for TooLargeError.
func objectSize(obj *unstructured.Unstructured) int {
	b, err := obj.MarshalJSON()
	if err != nil {
		return 0
	}
	return len(b)
}

// mapErr turns an API error about key into the store's errors.
func mapErr(key resource.Key, err error, size int) error {
	var status apierrors.APIStatus
	switch {
	case apierrors.IsNotFound(err) && errors.As(err, &status) && (status.Status().Details == nil || status.Status().Details.Name == ""):
		// The type itself is unknown: no object named in the answer.
		return fmt.Errorf("%s: the API server does not serve %s: install the CRDs of charts/atoll/crds: %w", key, key.Type, err)
	case apierrors.IsNotFound(err):
		return store.NotFound(key)
	case apierrors.IsAlreadyExists(err):
		return store.AlreadyExists(key)
	case apierrors.IsConflict(err):
		return store.Conflict(key)
	case apierrors.IsRequestEntityTooLargeError(err) || strings.Contains(err.Error(), "request is too large"):
		// 413 from the API server, or etcd's own limit passed through.
		return &store.TooLargeError{Key: key, Size: size}
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: %w: bind the zone's ServiceAccount to the ClusterRole and Role of charts/atoll (rules in %s)", key, err, RBACRules)
	case apierrors.IsInvalid(err):
		return fmt.Errorf("%s was refused by the Kubernetes API server's schema: %w", key, err)
	default:
		return fmt.Errorf("%s: %w", key, err)
	}
}
