package federation

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"

	fedv1 "github.com/causeway-mesh/causeway/api/federation/v1"
	"github.com/causeway-mesh/causeway/identity/bundle"
	"github.com/causeway-mesh/causeway/spec"
)

// LocalBundle is this trust domain's bundle and a channel closed at its next
// change; *ca.CA is one.
type LocalBundle interface {
	Bundle() *spiffebundle.Bundle
	Updated() <-chan struct{}
}

// Options configures New. Zero durations take the defaults in brackets.
type Options struct {
	// Cluster names this cluster to its peers; imports of ours are named
	// <service>-<Cluster> there.
	Cluster     string
	TrustDomain spiffeid.TrustDomain
	// SVID is the control plane's own X.509-SVID: it serves the federation
	// stream, dials peers and probes their gateways.
	SVID x509svid.Source
	// Bundle is the local CA's bundle, sent to peers and resent on rotation.
	Bundle LocalBundle
	// Federated receives every peer's bundle and loses it on unlink; the
	// Workload API hands it to workloads as federated_bundles.
	Federated *bundle.Set
	// Advertise are the addresses put in generated tokens (where peers
	// dial); empty means the listener's address (Serve must run first).
	// SetAdvertise replaces them later.
	Advertise []string
	// GatewayAddrs (host:port) and GatewayID are this cluster's east-west
	// gateways, sent with the exports. SetGateways replaces the addresses
	// later (discovered from the gateway's Service, for one).
	GatewayAddrs []string
	GatewayID    spiffeid.ID
	// StateFile, when set, keeps the links (peer, trust domain, control
	// plane ID, addresses, newest bundle) across restarts; empty keeps
	// them in memory only. It is short for Store: FileStore{StateFile}.
	StateFile string
	// Store, when set, keeps the links like StateFile, anywhere (a
	// SecretStore in cluster mode), and is what BundleFollowers read.
	// StateFile and Store are exclusive.
	Store Store

	Heartbeat     time.Duration // how often each side sends a heartbeat [5s]
	Timeout       time.Duration // silence after which a link is failed [3 × Heartbeat]
	ProbeInterval time.Duration // gateway health probes [5s]
	ProbeTimeout  time.Duration // one probe's connect + handshake [2s]
	BackoffBase   time.Duration // first reconnect delay, jittered [200ms]
	BackoffMax    time.Duration // longest reconnect delay [10s]
	Logger        *slog.Logger
}

func (o *Options) defaults() error {
	if err := validCluster(o.Cluster); err != nil {
		return fmt.Errorf("federation: cluster: %w", err)
	}
	if o.TrustDomain.IsZero() || o.SVID == nil || o.Bundle == nil || o.Federated == nil {
		return errors.New("federation: TrustDomain, SVID, Bundle and Federated are required")
	}
	if err := validGateways(o.GatewayAddrs); err != nil {
		return err
	}
	if o.StateFile != "" && o.Store != nil {
		return errors.New("federation: StateFile and Store are exclusive")
	}
	if o.StateFile != "" {
		o.Store = FileStore{Path: o.StateFile}
	}
	if len(o.GatewayAddrs) > 0 && o.GatewayID.IsZero() {
		return errors.New("federation: gateway addresses need a gateway SPIFFE ID")
	}
	o.Heartbeat = cmp.Or(o.Heartbeat, 5*time.Second)
	o.Timeout = cmp.Or(o.Timeout, 3*o.Heartbeat)
	o.ProbeInterval = cmp.Or(o.ProbeInterval, 5*time.Second)
	o.ProbeTimeout = cmp.Or(o.ProbeTimeout, 2*time.Second)
	o.BackoffBase = cmp.Or(o.BackoffBase, 200*time.Millisecond)
	o.BackoffMax = cmp.Or(o.BackoffMax, 10*time.Second)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Links is this cluster's set of links to other clusters: it issues and
// applies peering tokens, runs the federation stream with each peer, and
// turns what peers export into imports. Safe for concurrent use.
type Links struct {
	opts Options
	log  *slog.Logger

	// ctx bounds every goroutine Links starts itself (diallers, probes);
	// Close cancels it and waits for them.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	store     Store      // Options.Store; nil: links live in memory only
	saveMu    sync.Mutex // serialises writes of the store
	mu        sync.Mutex
	links     map[string]*link // by cluster
	tokens    map[string]*issued
	exports   []*fedv1.ExportedService // ours, from SetLocal, sorted
	gateways  []string                 // ours, from Options then SetGateways, sorted
	advertise []string                 // put in tokens; from Options then SetAdvertise
	local     chan struct{}            // closed and replaced when our exports or gateways change
	health    map[string]bool          // probed gateway address -> healthy
	listener  net.Addr
	grpc      *grpc.Server

	changes chan struct{} // 1-buffered: imports changed
	probe   chan struct{} // 1-buffered: probe now (new gateway addresses)
}

// link is one peer. Fields are guarded by Links.mu.
type link struct {
	cluster string
	td      spiffeid.TrustDomain
	// peerID is the SPIFFE ID the peer's control plane proved at peering;
	// every later connection, either way, must prove the same one.
	peerID spiffeid.ID
	// addrs are the peer's federation addresses when this side dials (it
	// applied the token); empty when the peer dials us.
	addrs     []string
	bundlePEM []byte
	state     spec.LinkState
	lastSeen  time.Time
	since     time.Time // peered at
	imports   *imported // last accepted exports; nil before the first
	acked     string    // version of ours the peer last ACKed
	nacked    string    // last NACK reason from the peer
	sess      *session  // the running stream, if any
	stopDial  context.CancelFunc
	removed   bool
}

// imported is a peer's exports as accepted.
type imported struct {
	version   string
	gateways  []string
	gatewayID spiffeid.ID
	services  []spec.Service // keyed as the peer names them
}

// New returns Links with no peers. Call Serve to accept peers and Run for
// health probes, heartbeat timeouts and bundle resends.
func New(opts Options) (*Links, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Links{
		opts: opts, log: opts.Logger.With("cluster", opts.Cluster), store: opts.Store,
		ctx: ctx, cancel: cancel,
		links: map[string]*link{}, tokens: map[string]*issued{},
		local: make(chan struct{}), health: map[string]bool{},
		gateways: sortedSet(opts.GatewayAddrs), advertise: slices.Clone(opts.Advertise),
		changes: make(chan struct{}, 1), probe: make(chan struct{}, 1),
	}
	if err := l.loadState(); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Close revokes nothing: it ends every stream and goroutine Links started
// (peers see this side go away and keep our imports until their timeout)
// and stops the server.
func (l *Links) Close() {
	l.cancel()
	l.mu.Lock()
	srv := l.grpc
	l.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
	l.wg.Wait()
}

// Changes fires (1-buffered, coalescing) whenever Imports would return
// something new.
func (l *Links) Changes() <-chan struct{} { return l.changes }

func (l *Links) changed() {
	select {
	case l.changes <- struct{}{}:
	default:
	}
}

func (l *Links) probeSoon() {
	select {
	case l.probe <- struct{}{}:
	default:
	}
}

// SetLocal takes the local snapshot's exported services (Export=true), with
// their identities of this trust domain, as what this cluster exports; peers
// get the new set at once.
func (l *Links) SetLocal(s *spec.Snapshot) {
	if s == nil {
		return
	}
	var out []*fedv1.ExportedService
	for _, svc := range s.Services {
		if !svc.Export || svc.Key.Cluster != "" {
			continue
		}
		e := &fedv1.ExportedService{Namespace: svc.Key.Namespace, Name: svc.Key.Name}
		for _, p := range svc.Ports {
			e.Ports = append(e.Ports, &fedv1.Port{Name: p.Name, Port: p.Port, Protocol: string(p.Protocol), TargetPort: p.TargetPort})
		}
		for _, id := range svc.Identities {
			// Only our own identities: a Service exported by linked
			// clusters too also lists theirs here (its one name across
			// clusters, spec.BuildWithImports), and a peer refuses
			// identities outside the exporter's trust domain.
			if id.MemberOf(l.opts.TrustDomain) {
				e.Identities = append(e.Identities, id.String())
			}
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *fedv1.ExportedService) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if slices.EqualFunc(out, l.exports, func(a, b *fedv1.ExportedService) bool { return protoEqual(a, b) }) {
		return
	}
	l.exports = out
	close(l.local)
	l.local = make(chan struct{})
}

// SetGateways replaces this cluster's east-west gateway addresses
// (host:port): peers get them with the exports at once, and import
// endpoints move to them. An empty list leaves peers with imports they
// cannot reach, as a cluster without a gateway. An address that is not
// host:port is refused and nothing changes.
func (l *Links) SetGateways(addrs []string) error {
	if err := validGateways(addrs); err != nil {
		return err
	}
	if len(addrs) > 0 && l.opts.GatewayID.IsZero() {
		return errors.New("federation: gateway addresses need a gateway SPIFFE ID")
	}
	set := sortedSet(addrs)
	l.mu.Lock()
	defer l.mu.Unlock()
	if slices.Equal(set, l.gateways) {
		return nil
	}
	l.gateways = set
	close(l.local)
	l.local = make(chan struct{})
	return nil
}

// SetAdvertise replaces the federation addresses put in peering tokens
// from now on (discovered from the federation Service's load balancer, for
// one); empty means the listener's address. Tokens already issued keep
// theirs, and peers linked already keep dialling the addresses they have.
// An address that is not host:port is refused and nothing changes.
func (l *Links) SetAdvertise(addrs []string) error {
	for i, a := range addrs {
		if _, err := splitAddr(a); err != nil {
			return fmt.Errorf("federation: advertised address [%d]: %w", i, err)
		}
	}
	l.mu.Lock()
	l.advertise = slices.Clone(addrs)
	l.mu.Unlock()
	return nil
}

func validGateways(addrs []string) error {
	for i, a := range addrs {
		if _, err := splitAddr(a); err != nil {
			return fmt.Errorf("federation: gateway address [%d]: %w", i, err)
		}
	}
	return nil
}

// sortedSet is a sorted copy of addrs without duplicates; nil when empty.
func sortedSet(addrs []string) []string {
	if len(addrs) == 0 {
		return nil
	}
	out := slices.Clone(addrs)
	slices.Sort(out)
	return slices.Compact(out)
}

// Imports returns every peer's exports as local Services named
// <name>-<cluster>, each with one endpoint per gateway of that peer, and a
// Link per peer with its state. An endpoint is ready when its link is
// active and its gateway passed the last probe.
func (l *Links) Imports() spec.Input {
	l.mu.Lock()
	defer l.mu.Unlock()
	var in spec.Input
	for _, c := range slices.Sorted(maps.Keys(l.links)) {
		lk := l.links[c]
		sl := spec.Link{Cluster: lk.cluster, TrustDomain: lk.td.Name(), ControlAddrs: slices.Clone(lk.addrs),
			Bundle: slices.Clone(lk.bundlePEM), State: lk.state}
		if im := lk.imports; im != nil {
			sl.GatewayAddrs = slices.Clone(im.gateways)
			for _, svc := range im.services {
				remote := svc.Key
				svc.Key = spec.Key{Namespace: remote.Namespace, Name: remote.Name + "-" + lk.cluster}
				svc.Origin = spec.Origin{Source: spec.Source{File: "federation:" + lk.cluster}, Object: spec.Object{Kind: "ServiceImport", Namespace: remote.Namespace, Name: remote.Name}}
				svc.Ports = slices.Clone(svc.Ports)
				svc.Identities = slices.Clone(svc.Identities)
				svc.Endpoints = nil
				for _, g := range im.gateways {
					ep, _ := splitAddr(g) // validated on receipt
					ep.Ready = lk.state == spec.LinkActive && l.health[g]
					ep.Gateway = im.gatewayID
					ep.Remote = remote
					svc.Endpoints = append(svc.Endpoints, ep)
				}
				in.Services = append(in.Services, svc)
			}
		}
		in.Links = append(in.Links, sl)
	}
	return in
}

// Status is one link as `causeway link list` shows it.
type Status struct {
	Cluster      string         `json:"cluster"`
	TrustDomain  string         `json:"trustDomain"`
	State        spec.LinkState `json:"state"`
	Dials        []string       `json:"dials,omitempty"` // peer addresses this side dials
	Connected    bool           `json:"connected"`
	LastSeen     time.Time      `json:"lastSeen,omitzero"`
	Since        time.Time      `json:"since"`
	Imports      []string       `json:"imports,omitempty"` // local names of imported services
	Gateways     []string       `json:"gateways,omitempty"`
	ImportedVer  string         `json:"importedVersion,omitempty"`
	ExportAcked  string         `json:"exportAckedVersion,omitempty"`
	ExportNacked string         `json:"exportNack,omitempty"`
}

// List returns every link, ordered by cluster.
func (l *Links) List() []Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []Status{}
	for _, c := range slices.Sorted(maps.Keys(l.links)) {
		lk := l.links[c]
		s := Status{Cluster: c, TrustDomain: lk.td.Name(), State: lk.state, Dials: slices.Clone(lk.addrs),
			Connected: lk.sess != nil, LastSeen: lk.lastSeen, Since: lk.since, ExportAcked: lk.acked, ExportNacked: lk.nacked}
		if im := lk.imports; im != nil {
			s.ImportedVer = im.version
			s.Gateways = slices.Clone(im.gateways)
			for _, svc := range im.services {
				s.Imports = append(s.Imports, svc.Key.Namespace+"/"+svc.Key.Name+"-"+c)
			}
		}
		out = append(out, s)
	}
	return out
}

// ErrUnknownLink is returned by Remove for a cluster with no link.
var ErrUnknownLink = errors.New("no link to that cluster")

// Remove revokes the link to cluster: the peer is told (when connected) and
// drops our imports and bundle; this side drops the peer's imports and
// bundle and stops dialling.
func (l *Links) Remove(ctx context.Context, cluster string) error {
	l.mu.Lock()
	lk, ok := l.links[cluster]
	if !ok {
		l.mu.Unlock()
		return fmt.Errorf("unlink %q: %w", cluster, ErrUnknownLink)
	}
	sess := lk.sess
	l.mu.Unlock()
	if sess != nil {
		sess.sendRevoke(ctx, "unlinked by cluster "+l.opts.Cluster)
	}
	l.drop(lk, "unlinked here")
	return nil
}

// drop forgets a link and its bundle; the link's goroutines end on their own.
func (l *Links) drop(lk *link, why string) {
	l.mu.Lock()
	if lk.removed {
		l.mu.Unlock()
		return
	}
	lk.removed = true
	if l.links[lk.cluster] == lk {
		delete(l.links, lk.cluster)
	}
	stop, sess := lk.stopDial, lk.sess
	l.mu.Unlock()
	l.opts.Federated.Remove(lk.td)
	if stop != nil {
		stop()
	}
	if sess != nil {
		sess.cancel()
	}
	l.log.Info("federation: link removed", "peer", lk.cluster, "trustDomain", lk.td.Name(), "why", why)
	l.saveState()
	l.changed()
}

// addLink records a newly peered cluster, replacing an older link to the
// same cluster (a re-peering after a revoke the other side missed).
func (l *Links) addLink(cluster string, td spiffeid.TrustDomain, peerID spiffeid.ID, roots []*x509.Certificate, addrs []string) *link {
	l.mu.Lock()
	old := l.links[cluster]
	lk := &link{cluster: cluster, td: td, peerID: peerID, addrs: addrs, bundlePEM: encodeRoots(roots), state: spec.LinkPending, since: time.Now()}
	l.links[cluster] = lk
	l.mu.Unlock()
	if old != nil {
		l.drop(old, "replaced by a new peering")
		l.mu.Lock()
		l.links[cluster] = lk
		l.mu.Unlock()
	}
	l.opts.Federated.Put(spiffebundle.FromX509Authorities(td, roots))
	l.saveState()
	l.changed()
	return lk
}

func splitAddr(a string) (spec.Endpoint, error) {
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		return spec.Endpoint{}, err
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return spec.Endpoint{}, fmt.Errorf("%q: port out of range 1-65535", a)
	}
	if h == "" {
		return spec.Endpoint{}, fmt.Errorf("%q: host is empty", a)
	}
	return spec.Endpoint{Addr: h, Port: int32(n)}, nil
}
