package global

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/kds"
)

// zoneSync is the global's side of KDS: it serves each connected zone from
// the store, keeps ZoneInsights, and pushes changes to every session.
type zoneSync struct {
	store     store.Store
	cache     *store.Cache
	wire      *kds.WireMemo
	endpoints *endpointIndex
	// ingressNames finds the stored ZoneIngress of a wire name.
	ingressNames *ingressNames
	meshes       chan struct{} // a Mesh changed: Direct mode may have too
	instanceID   string
	// withdrawAfter hides zones offline for longer (0: never).
	withdrawAfter time.Duration
	log           *slog.Logger
	refused       *prometheus.CounterVec
	// duplicates counts newcomers refused because another process of
	// their zone is connected.
	duplicates *prometheus.CounterVec
	// silentAfter is how long a session may go without a message from its
	// zone before a newcomer with the zone's name replaces it
	// (kds.zoneOfflineAfter; zones send a heartbeat every third of it).
	silentAfter time.Duration
	// revoke, when set, revokes a deleted zone's tokens.
	revoke func(ctx context.Context, zone string) error

	// loaded is closed once the endpoint index holds the Dataplanes (or no
	// mesh is Direct): sessions wait for it, so no zone is told that every
	// ServiceEndpoints is gone while the global is still loading them.
	loaded     chan struct{}
	loadedOnce sync.Once
	// maxResourcesPerZone caps each zone's resources (kds.maxResourcesPerZone).
	maxResourcesPerZone int

	mu       sync.Mutex
	sessions map[string]*liveSession
}

// connectWait bounds how long a zone's stream waits for the global to load
// its state before it is refused with Unavailable (the zone retries). It
// stays under the 10 s a zone waits for the global's Hello, so the zone
// learns why.
const connectWait = 5 * time.Second

// errLoading: the global has not loaded its state yet.
var errLoading = errors.New("the global is still loading its state (the endpoint index of Direct meshes): the zone retries")

type liveSession struct {
	session *kds.Session
	cancel  context.CancelFunc
	from    kds.Peer
	since   time.Time
	subID   string
	// replaced are the sessions this one replaced whose end is not yet
	// recorded in the insight (guarded by zoneSync.mu).
	replaced []*liveSession
}

var _ kds.ZoneHandler = (*zoneSync)(nil)

func newZoneSync(st store.Store, cache *store.Cache, instanceID string, withdrawAfter time.Duration, reg prometheus.Registerer, log *slog.Logger) *zoneSync {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "atoll_kds_refused_resources_total",
		Help: "Resources from zones refused by the global, by zone and reason (invalid, spoof, limit, too-large).",
	}, []string{"zone", "reason"})
	duplicates := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "atoll_global_zone_duplicate_refusals_total",
		Help: "Connections refused because another process of the same zone name was connected, by zone.",
	}, []string{"zone"})
	reg.MustRegister(refused, duplicates)
	z := &zoneSync{store: st, cache: cache, wire: &kds.WireMemo{}, ingressNames: &ingressNames{byWire: map[string]string{}}, instanceID: instanceID, withdrawAfter: withdrawAfter,
		log: log, refused: refused, duplicates: duplicates, silentAfter: defaultSilentAfter,
		sessions: map[string]*liveSession{}, loaded: make(chan struct{})}
	z.endpoints = newEndpointIndex(func(keys []string) {
		if keys == nil {
			z.broadcast(resource.ServiceEndpointsType)
			return
		}
		z.broadcastKeys(resource.ServiceEndpointsType, keys)
	})
	// Sessions read what they push from the cache, so they are told of a
	// change once the cache holds it. Zone changes (enabled) change which
	// zones' services each zone gets; a mesh's cross-zone mode whether its
	// ServiceEndpoints are sent.
	pushes := map[resource.Type][]resource.Type{
		resource.MeshType:        {resource.MeshType, resource.ServiceEndpointsType},
		resource.VIPTableType:    {resource.VIPTableType},
		resource.ZoneIngressType: {resource.ZoneIngressType},
		resource.ZoneType:        {resource.ZoneIngressType, resource.ServiceEndpointsType},
	}
	// A changed ZoneIngress or VIP record is compared alone by every
	// session (DesiredKeys); the rest, and reloads, whole.
	cache.SubscribeKeys(func(t resource.Type, key *resource.Key) {
		switch {
		case t == resource.ZoneIngressType && key != nil:
			z.broadcastKeys(t, []string{kds.WireKey("", z.ingressNames.note(cache, z.wire, *key))})
			return
		case t == resource.ZoneIngressType:
			z.ingressNames.reset(cache)
		case t == resource.VIPTableType && key != nil:
			if _, err := cache.Get(*key); store.IsNotFound(err) {
				z.wire.ForgetName(*key, key.Name)
			}
			z.broadcastKeys(t, []string{kds.WireKey(key.Mesh, key.Name)})
			return
		}
		for _, pushed := range pushes[t] {
			z.broadcast(pushed)
		}
	})
	z.meshes = make(chan struct{}, 1)
	cache.Signal(z.meshes, resource.MeshType)
	return z
}

// followEndpoints keeps the endpoint index in step with the Dataplanes in
// etcd while some mesh's cross-zone mode is Direct, and empties it when
// none is: installations that do not use Direct do not pay for it.
func (z *zoneSync) followEndpoints(ctx context.Context) {
	var stop context.CancelFunc
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for {
		direct := false
		for _, m := range z.cache.List(resource.MeshType, "") {
			if m.Spec.(*v1alpha1.Mesh).GetCrossZone().GetMode() == v1alpha1.Mesh_CrossZone_Direct {
				direct = true
			}
		}
		switch {
		case direct && stop == nil:
			fctx, cancel := context.WithCancel(ctx)
			if err := store.Follow(fctx, z.store, resource.DataplaneType, z.endpoints.reset, z.endpoints.apply); err != nil {
				cancel()
				z.log.Warn("following Dataplanes for Direct meshes failed; retrying", "error", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				continue
			}
			stop = cancel
		case !direct && stop != nil:
			stop()
			stop = nil
			z.endpoints.reset(nil)
		}
		if !direct || stop != nil {
			z.loadedOnce.Do(func() { close(z.loaded) })
		}
		select {
		case <-ctx.Done():
			return
		case <-z.meshes:
		}
	}
}

// Connect creates the Zone on first contact and returns the zone's endpoint.
// It waits until the global has loaded its state (see Loaded).
func (z *zoneSync) Connect(ctx context.Context, zone string, hello *v1alpha1.Hello) (kds.Endpoint, error) {
	wait := time.NewTimer(connectWait)
	defer wait.Stop()
	select {
	case <-z.loaded:
	case <-wait.C:
		return nil, errLoading
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	ctx, cancel := context.WithTimeout(ctx, insightTimeout)
	defer cancel()
	_, err := z.store.Create(ctx, &resource.Resource{
		Meta: resource.Meta{Type: resource.ZoneType, Name: zone, Labels: map[string]string{resource.OriginLabel: resource.OriginGlobal}},
		Spec: &v1alpha1.Zone{},
	})
	if err != nil && !store.IsAlreadyExists(err) {
		return nil, fmt.Errorf("registering zone: %w", err)
	}
	return &zoneEndpoint{zone: zone, store: z.store, cache: z.cache, wire: z.wire, endpoints: z.endpoints, ingressNames: z.ingressNames,
		legacy:  !slices.Contains(hello.GetFeatures(), kds.FeaturePerServiceRecords),
		refused: z.refused, withdrawAfter: z.withdrawAfter, maxResources: z.maxResourcesPerZone}, nil
}

// Loaded reports, for /readyz, whether sessions are served: nil once the
// endpoint index holds the Dataplanes, or no mesh is Direct.
func (z *zoneSync) Loaded(context.Context) error {
	select {
	case <-z.loaded:
		return nil
	default:
		return errLoading
	}
}

// Claim registers the session. A zone holds one session on this replica:
// a newcomer of the same process (same instance: it reconnected before
// the global saw its old stream end) replaces the old session, and so does
// any newcomer once the old session has been silent for silentAfter (a
// half-dead stream). Otherwise the newcomer is another process using the
// zone's name: it is refused, and the connected one keeps its session.
// Claim only reads memory; Started records the session in the insight.
func (z *zoneSync) Claim(zone string, from kds.Peer, s *kds.Session, cancel context.CancelFunc) error {
	now := time.Now()
	z.mu.Lock()
	old := z.sessions[zone]
	var silent time.Duration
	if old != nil {
		silent = now.Sub(old.session.Stats.LastSeen())
		if old.from.Instance != from.Instance && silent < z.silentAfter {
			z.mu.Unlock()
			return z.refuseDuplicate(zone, old, from)
		}
	}
	live := &liveSession{session: s, cancel: cancel, from: from, since: now, subID: fmt.Sprintf("%s-%d", z.instanceID, now.UnixNano())}
	if old != nil {
		// The old session's end is recorded once this one's start is
		// (Started), or by this one's end if it never starts.
		live.replaced = append(old.replaced, old)
		old.replaced = nil
	}
	z.sessions[zone] = live
	z.mu.Unlock()
	if old != nil {
		if old.from.Instance != from.Instance {
			z.log.Warn("replaced the session of a zone silent for too long by a new process with its name",
				"zone", zone, "silentFor", silent.Round(time.Second), "old", old.from.Addr, "oldInstance", old.from.Instance,
				"new", from.Addr, "newInstance", from.Instance)
		}
		old.cancel()
	}
	return nil
}

// Started records the claimed session, and the end of those it replaced,
// in the zone's insight.
func (z *zoneSync) Started(zone string, s *kds.Session) {
	z.mu.Lock()
	live := z.sessions[zone]
	if live == nil || live.session != s {
		z.mu.Unlock()
		return // replaced already: its successor records it ended
	}
	replaced := live.replaced
	live.replaced = nil
	z.mu.Unlock()
	for _, old := range replaced {
		z.writeInsight(context.Background(), zone, old, true)
	}
	z.writeInsight(context.Background(), zone, live, false)
}

// defaultSilentAfter is silentAfter's default, kds.zoneOfflineAfter's.
const defaultSilentAfter = 30 * time.Second

// refuseDuplicate counts and logs a newcomer refused because old holds the
// zone, and returns what the newcomer is told.
func (z *zoneSync) refuseDuplicate(zone string, old *liveSession, from kds.Peer) error {
	z.duplicates.WithLabelValues(zone).Inc()
	z.log.Warn("refused a second process connecting as a zone that is connected: two zone processes share one name",
		"zone", zone, "connected", old.from.Addr, "connectedInstance", old.from.Instance, "connectedSince", old.since.UTC().Format(time.TimeOnly),
		"refused", from.Addr, "refusedInstance", from.Instance)
	return status.Errorf(codes.AlreadyExists,
		"zone %s is already connected from %s (since %s UTC); two zone processes must not share a name: stop the other, or give this one another --zone name (this one retries, and takes over once the other has disconnected or been silent for %s)",
		zone, addrOrUnknown(old.from.Addr), old.since.UTC().Format(time.TimeOnly), z.silentAfter)
}

// addrOrUnknown names an address for a message ("" on in-process transports).
func addrOrUnknown(addr string) string {
	if addr == "" {
		return "an unknown address"
	}
	return addr
}

// Ended forgets the session and records the disconnect, and that of the
// sessions it replaced if it ended before Started recorded them.
func (z *zoneSync) Ended(zone string, s *kds.Session, err error) {
	z.mu.Lock()
	live := z.sessions[zone]
	if live == nil || live.session != s {
		z.mu.Unlock()
		return // replaced by a newer session, which records its end
	}
	delete(z.sessions, zone)
	replaced := live.replaced
	live.replaced = nil
	z.mu.Unlock()
	for _, old := range replaced {
		z.writeInsight(context.Background(), zone, old, true)
	}
	z.writeInsight(context.Background(), zone, live, true)
}

// broadcast tells every session that t changed.
func (z *zoneSync) broadcast(t resource.Type) {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, l := range z.sessions {
		l.session.Changed(t)
	}
}

// broadcastKeys tells every session that of t only the resources with
// these wire keys changed.
func (z *zoneSync) broadcastKeys(t resource.Type, keys []string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, l := range z.sessions {
		l.session.ChangedKeys(t, keys...)
	}
}

// Run drains deleted zones and refreshes insights until ctx ends.
func (z *zoneSync) Run(ctx context.Context, insightEvery time.Duration) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		z.watchDeletes(ctx)
	}()
	go func() {
		defer wg.Done()
		z.followEndpoints(ctx)
	}()
	tick := time.NewTicker(insightEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-tick.C:
			z.mu.Lock()
			live := make(map[string]*liveSession, len(z.sessions))
			for k, v := range z.sessions {
				live[k] = v
			}
			z.mu.Unlock()
			for zone, l := range live {
				z.writeInsight(ctx, zone, l, false)
			}
			if z.withdrawAfter > 0 {
				// Zones may have crossed the withdrawal age since the last push.
				z.broadcast(resource.ZoneIngressType)
				z.broadcast(resource.ServiceEndpointsType)
			}
		}
	}
}

// watchDeletes drains each zone deleted from the store, re-watching when a
// watch ends early.
func (z *zoneSync) watchDeletes(ctx context.Context) {
	for ctx.Err() == nil {
		ch, err := z.store.Watch(ctx, resource.ZoneType)
		if err != nil {
			z.log.Warn("watch failed; retrying", "type", resource.ZoneType, "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for e := range ch {
			if e.Kind == store.Deleted {
				z.drain(ctx, e.Resource.Meta.Name)
			}
		}
	}
}

// drain removes everything of a zone that was deleted (a zone that is only
// disconnected keeps its data) and ends its session; if the zone is still
// running it reconnects and registers again.
func (z *zoneSync) drain(ctx context.Context, zone string) {
	if z.revoke != nil {
		// Before draining: the zone's session ends below, and it must not
		// come back with the token it had.
		if err := z.revoke(ctx, zone); err != nil {
			z.log.Warn("revoking a deleted zone's tokens failed; revoke them with atollctl revoke zone-token", "zone", zone, "error", err)
		}
	}
	var ops []store.Op
	for _, t := range []resource.Type{resource.DataplaneType, resource.ZoneIngressType, resource.ZoneInsightType} {
		items, err := z.store.List(ctx, t, "")
		if err != nil {
			z.log.Warn("draining a deleted zone failed", "zone", zone, "error", err)
			return
		}
		for _, r := range items {
			if r.Meta.Labels[resource.ZoneLabel] == zone {
				ops = append(ops, store.Op{Delete: r.Key()})
			}
		}
	}
	if err := z.store.Apply(ctx, ops); err != nil {
		z.log.Warn("draining a deleted zone failed", "zone", zone, "error", err)
		return
	}
	if f, ok := z.store.(store.Fencer); ok {
		// Ends the session's writes too; it is cancelled below.
		if err := f.DropFence(ctx, zone); err != nil {
			z.log.Warn("removing a deleted zone's KDS fence failed", "zone", zone, "error", err)
		}
	}
	z.mu.Lock()
	live := z.sessions[zone]
	z.mu.Unlock()
	if live != nil {
		live.cancel()
	}
	z.log.Info("zone deleted: its resources were removed", "zone", zone, "resources", len(ops))
}

// insightTimeout bounds each store call of an insight write (and the
// zone's registration): a slow etcd delays a session's start by at most
// this per call, and never blocks a session for good.
const insightTimeout = 5 * time.Second

// insightAttempts bounds the compare-and-swap retries of one write.
const insightAttempts = 5

// maxSubscriptions is how many sessions a ZoneInsight keeps.
const maxSubscriptions = 5

// writeInsight records the session in the zone's ZoneInsight with
// compare-and-swap: it changes only the session's own subscription (by
// id), so a replica never overwrites another replica's newer session, and
// an ended session never re-adds itself once dropped. Subscriptions are
// kept newest connection first, at most maxSubscriptions. Each store call
// has a deadline; a write that loses to another writer reads again.
func (z *zoneSync) writeInsight(ctx context.Context, zone string, l *liveSession, ended bool) {
	sub := z.subscription(l, ended)
	var err error
	for range insightAttempts {
		if err = z.tryWriteInsight(ctx, zone, sub, ended); err == nil || !(store.IsConflict(err) || store.IsAlreadyExists(err)) {
			break
		}
	}
	if err != nil && ctx.Err() == nil {
		z.log.Warn("writing zone insight failed", "zone", zone, "error", err)
	}
}

func (z *zoneSync) subscription(l *liveSession, ended bool) *v1alpha1.KDSSubscription {
	snap := l.session.Stats.Snapshot()
	sub := &v1alpha1.KDSSubscription{
		Id:               l.subID,
		GlobalInstanceId: z.instanceID,
		ConnectTime:      timestamppb.New(snap.Connected),
		LastSeen:         timestamppb.New(snap.LastSeen),
		SyncLagMs:        snap.SyncLag.Milliseconds(),
		Stats:            map[string]*v1alpha1.KDSSubscription_TypeStats{},
	}
	if ended {
		sub.DisconnectTime = timestamppb.Now()
	}
	for t, ts := range snap.Types {
		sub.Stats[string(t)] = &v1alpha1.KDSSubscription_TypeStats{
			Sent: ts.Sent, Acked: ts.Acked, Nacked: ts.Nacked, Received: ts.Received, LastAckedVersion: ts.LastAckedNonce,
		}
	}
	return sub
}

func (z *zoneSync) tryWriteInsight(ctx context.Context, zone string, sub *v1alpha1.KDSSubscription, ended bool) error {
	ctx, cancel := context.WithTimeout(ctx, insightTimeout)
	defer cancel()
	key := resource.Key{Type: resource.ZoneInsightType, Name: zone}
	cur, err := z.store.Get(ctx, key)
	if err != nil && !store.IsNotFound(err) {
		return err
	}
	if cur == nil {
		if ended {
			return nil // drained with its zone, or never recorded: nothing to close
		}
		_, err := z.store.Create(ctx, &resource.Resource{
			Meta: resource.Meta{Type: resource.ZoneInsightType, Name: zone,
				Labels: map[string]string{resource.ZoneLabel: zone, resource.OriginLabel: resource.OriginGlobal}},
			Spec: &v1alpha1.ZoneInsight{Subscriptions: []*v1alpha1.KDSSubscription{sub}},
		})
		return err
	}
	subs, ok := mergeSubscription(cur.Spec.(*v1alpha1.ZoneInsight).GetSubscriptions(), sub, ended)
	if !ok {
		return nil
	}
	next := cur.Clone()
	next.Spec = &v1alpha1.ZoneInsight{Subscriptions: subs}
	_, err = z.store.Update(ctx, next)
	return err
}

// mergeSubscription replaces sub's entry in subs (by id) or, for a live
// session, adds it; the result is ordered newest connection first and
// capped. ok is false when there is nothing to write: an ended session
// whose entry is gone.
func mergeSubscription(subs []*v1alpha1.KDSSubscription, sub *v1alpha1.KDSSubscription, ended bool) (out []*v1alpha1.KDSSubscription, ok bool) {
	found := false
	for _, s := range subs {
		if s.GetId() == sub.GetId() {
			out, found = append(out, sub), true
			continue
		}
		out = append(out, s)
	}
	if !found {
		if ended {
			return nil, false
		}
		out = append(out, sub)
	}
	slices.SortStableFunc(out, func(a, b *v1alpha1.KDSSubscription) int {
		return b.GetConnectTime().AsTime().Compare(a.GetConnectTime().AsTime())
	})
	if len(out) > maxSubscriptions {
		out = out[:maxSubscriptions]
	}
	return out, true
}
