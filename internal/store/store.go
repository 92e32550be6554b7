// Package store defines how atoll keeps resources: one small interface with
// optimistic concurrency and watches, errors callers can test for, and the
// encoding of resources at rest. Implementations live in sub-packages
// (memstore, boltstore, etcdstore, crdstore) and all pass storetest's conformance suite.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/atoll-mesh/atoll/internal/resource"
)

// Reader reads resources.
type Reader interface {
	// Get returns the resource at key, or an error satisfying IsNotFound.
	Get(ctx context.Context, key resource.Key) (*resource.Resource, error)
	// List returns every resource of type t in mesh, or in every mesh when
	// mesh is "", sorted by mesh then name.
	List(ctx context.Context, t resource.Type, mesh string) ([]*resource.Resource, error)
}

// Writer changes resources. Versions make writes safe under concurrency:
// Update and Delete with a version fail with an error satisfying IsConflict
// when the stored version differs.
type Writer interface {
	// Create stores a new resource. It fails with IsAlreadyExists when the
	// key is taken. The returned copy carries the new version and times.
	Create(ctx context.Context, r *resource.Resource) (*resource.Resource, error)
	// Update replaces an existing resource whose version is r.Meta.Version.
	// The creation time is kept from the stored copy.
	Update(ctx context.Context, r *resource.Resource) (*resource.Resource, error)
	// Delete removes the resource at key. An empty version deletes
	// whatever is stored; a missing resource is IsNotFound.
	Delete(ctx context.Context, key resource.Key, version string) error
	// Apply writes many resources at once, unconditionally: puts store the
	// resource as given (meta times included), deletes of missing keys are
	// no-ops. Backends group at most MaxBatch operations per transaction,
	// and stay under their request size limit. A put too large to store
	// fails Apply with an error satisfying IsTooLarge that names each such
	// resource (see TooLargeErrors); when the backend knows its limit,
	// before anything is written. Puts are idempotent: Apply again without
	// them.
	Apply(ctx context.Context, ops []Op) error
}

// Watcher streams changes.
type Watcher interface {
	// Watch sends every change to resources of type t made after Watch
	// returns, in order. The channel is closed when ctx ends or when the
	// watch can no longer keep up; callers then List and Watch again.
	Watch(ctx context.Context, t resource.Type) (<-chan Event, error)
}

// Store is the whole interface. Consumers should declare the part they use.
type Store interface {
	Reader
	Writer
	Watcher
	// Close releases the store's resources.
	Close() error
}

// Fencer is implemented by stores several processes share. A fence keeps
// a writer that was replaced from writing late: a request of its that was
// cancelled, or sent by a process since killed, may still be applied by the
// store after its successor read the state, and the successor would never
// learn of it. Writes made through a Fence apply only while no newer Fence
// of the same name was taken; the store orders each write against the
// taking of a newer fence, so a successor that takes its fence before
// reading sees every write of its predecessor that will ever apply.
type Fencer interface {
	// Fence takes the fence named name, ending every older Fence of it.
	Fence(ctx context.Context, name string) (Fence, error)
	// DropFence removes the fence named name (ending its holder), for a
	// writer that is gone for good.
	DropFence(ctx context.Context, name string) error
}

// Fence is a writer's claim taken with Fencer.Fence.
type Fence interface {
	// Apply is Writer.Apply, made only while the fence is the newest of
	// its name; otherwise it writes nothing and fails with ErrFenced. Like
	// Writer.Apply it may write some transactions and fail a later one.
	Apply(ctx context.Context, ops []Op) error
}

// MaxBatch is the most operations a backend puts in one transaction.
const MaxBatch = 128

// Op is one operation of Apply: a put when Put is set, else a delete of Delete.
type Op struct {
	Put    *resource.Resource
	Delete resource.Key
}

// EventKind says what happened to a resource.
type EventKind int

const (
	Put EventKind = iota
	Deleted
)

func (k EventKind) String() string {
	if k == Deleted {
		return "delete"
	}
	return "put"
}

// Event is one change. For deletes, Resource carries only meta: the key and
// the version at which it was deleted. Watchers share the Resource: treat it
// as read-only.
type Event struct {
	Kind     EventKind
	Resource *resource.Resource
}

// Sentinel errors. Wrapped errors name the resource; test with the IsX helpers.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	ErrConflict      = errors.New("was changed by someone else: read it again and retry")
	// ErrFenced: a write through a Fence that a newer one replaced.
	ErrFenced   = errors.New("a newer writer took over (its fence replaced this one's): nothing was written")
	ErrTooLarge = errors.New("too large to store")
)

// TooLargeError names a resource too large for the store.
type TooLargeError struct {
	Key resource.Key
	// Size is the resource's encoded size; Limit the most the store takes
	// (0 when the backend refused it without saying its limit).
	Size, Limit int
}

func (e *TooLargeError) Error() string {
	if e.Limit <= 0 {
		return fmt.Sprintf("%s is %v: %d bytes encoded, over the backend's request limit", e.Key, ErrTooLarge, e.Size)
	}
	return fmt.Sprintf("%s is %v: %d bytes encoded, over the limit of %d bytes per resource", e.Key, ErrTooLarge, e.Size, e.Limit)
}

func (e *TooLargeError) Unwrap() error { return ErrTooLarge }

// IsTooLarge reports whether err means a resource is too large to store.
func IsTooLarge(err error) bool { return errors.Is(err, ErrTooLarge) }

// TooLargeErrors returns every TooLargeError within err, which may join
// several.
func TooLargeErrors(err error) []*TooLargeError {
	var out []*TooLargeError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *TooLargeError:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// IsNotFound reports whether err means the resource does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsAlreadyExists reports whether err means the key is taken.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsConflict reports whether err means the version did not match.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsFenced reports whether a write was refused because a newer Fence of
// its name was taken.
func IsFenced(err error) bool { return errors.Is(err, ErrFenced) }

// NotFound returns an error for key satisfying IsNotFound.
func NotFound(key resource.Key) error { return fmt.Errorf("%s: %w", key, ErrNotFound) }

// AlreadyExists returns an error for key satisfying IsAlreadyExists.
func AlreadyExists(key resource.Key) error { return fmt.Errorf("%s: %w", key, ErrAlreadyExists) }

// Conflict returns an error for key satisfying IsConflict.
func Conflict(key resource.Key) error { return fmt.Errorf("%s %w", key, ErrConflict) }

// ForCreate returns the copy of r that a backend stores on Create: times set
// to now unless the caller gave a creation time.
func ForCreate(r *resource.Resource, now time.Time) *resource.Resource {
	c := r.Clone()
	if c.Meta.CreationTime.IsZero() {
		c.Meta.CreationTime = now
	}
	c.Meta.ModificationTime = now
	return c
}

// ForUpdate returns the copy of r that a backend stores on Update of old.
func ForUpdate(r, old *resource.Resource, now time.Time) *resource.Resource {
	c := r.Clone()
	c.Meta.CreationTime = old.Meta.CreationTime
	c.Meta.ModificationTime = now
	return c
}

// ForApply returns the copy of an Apply put that a backend stores.
func ForApply(r *resource.Resource, now time.Time) *resource.Resource {
	c := r.Clone()
	if c.Meta.CreationTime.IsZero() {
		c.Meta.CreationTime = now
	}
	if c.Meta.ModificationTime.IsZero() {
		c.Meta.ModificationTime = now
	}
	return c
}
