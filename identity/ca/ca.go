package ca

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Defaults, chosen to match what a SPIRE operator would expect.
const (
	DefaultSVIDTTL     = 24 * time.Hour
	DefaultJWTTTL      = 5 * time.Minute
	DefaultCATTL       = 365 * 24 * time.Hour
	DefaultOverlap     = 48 * time.Hour
	DefaultRefreshHint = 5 * time.Minute
	// MinSVIDTTL keeps renewal at half-life meaningful; tests use seconds.
	MinSVIDTTL = time.Second
	// backdate absorbs clock skew between the CA and verifiers, as SPIRE does.
	backdate = 10 * time.Second
)

// Options configures New. Zero values take the defaults above.
type Options struct {
	TrustDomain spiffeid.TrustDomain
	Store       Store
	KeyType     KeyType
	SVIDTTL     time.Duration // default X.509-SVID lifetime
	JWTTTL      time.Duration // default JWT-SVID lifetime
	CATTL       time.Duration // lifetime of each root and intermediate
	// Overlap is how long a rotated-out authority stays trusted. It should be
	// at least SVIDTTL so no SVID outlives the trust in its issuer.
	Overlap     time.Duration
	RefreshHint time.Duration // published in the bundle
	Now         func() time.Time
	Logger      *slog.Logger
}

// CA is a trust domain's certificate authority. It is safe for concurrent use.
// It implements x509bundle.Source, jwtbundle.Source and spiffebundle.Source for
// its own trust domain.
type CA struct {
	opts Options
	log  *slog.Logger

	mu      sync.RWMutex
	stats   Stats
	stored  string       // stateKey of what this instance last read from or wrote to the store
	auths   []*authority // newest first: at most one prepared, then the active one, then retiring ones
	seq     uint64
	updated chan struct{} // closed and replaced on every change
}

// New loads the CA's state from opts.Store, or creates and saves a fresh root
// and intermediate when the store is empty.
func New(ctx context.Context, opts Options) (*CA, error) {
	if opts.TrustDomain.IsZero() {
		return nil, errors.New("CA: trust domain is empty")
	}
	if opts.Store == nil {
		return nil, errors.New("CA: no store")
	}
	setDefaults(&opts)
	if opts.SVIDTTL < MinSVIDTTL {
		return nil, fmt.Errorf("CA %s: SVID TTL %s is below the minimum %s", opts.TrustDomain, opts.SVIDTTL, MinSVIDTTL)
	}
	if opts.Overlap < opts.SVIDTTL {
		// Otherwise an SVID signed just before an activation would outlive
		// the trust in its root.
		return nil, fmt.Errorf("CA %s: rotation overlap %s is shorter than SVID TTL %s", opts.TrustDomain, opts.Overlap, opts.SVIDTTL)
	}
	if opts.CATTL <= opts.SVIDTTL {
		return nil, fmt.Errorf("CA %s: CA TTL %s must exceed SVID TTL %s", opts.TrustDomain, opts.CATTL, opts.SVIDTTL)
	}
	c := &CA{opts: opts, log: opts.Logger.With("trustDomain", opts.TrustDomain.Name()), updated: make(chan struct{})}
	st, err := opts.Store.Load(ctx)
	switch {
	case errors.Is(err, ErrNoState):
		a, err := newAuthority(opts.TrustDomain, opts.KeyType, opts.Now(), opts.CATTL)
		if err != nil {
			return nil, err
		}
		c.auths, c.seq = []*authority{a}, 1
		if err := c.saveLocked(ctx, c.seq); err != nil {
			return nil, err
		}
		c.log.Info("created CA", "root", a.root.SerialNumber.Text(16), "notAfter", a.root.NotAfter)
	case err != nil:
		return nil, err
	default:
		if c.auths, err = parseState(st, opts.TrustDomain); err != nil {
			return nil, err
		}
		c.seq = st.Sequence
		c.stored = stateKey(st)
	}
	return c, nil
}

// parseState checks a stored state and parses its authorities.
func parseState(st *State, td spiffeid.TrustDomain) ([]*authority, error) {
	if st.TrustDomain != td.Name() {
		return nil, fmt.Errorf("CA store: trustDomain %q does not match configured %q", st.TrustDomain, td.Name())
	}
	if len(st.Authorities) == 0 {
		return nil, fmt.Errorf("CA store: authorities: empty")
	}
	var auths []*authority
	for i, as := range st.Authorities {
		a, err := parseAuthority(as)
		if err != nil {
			return nil, fmt.Errorf("CA store: authorities[%d]: %w", i, err)
		}
		if a.prepared && i != 0 {
			return nil, fmt.Errorf("CA store: authorities[%d]: only the newest authority may be prepared", i)
		}
		auths = append(auths, a)
	}
	if len(auths) == 1 && auths[0].prepared {
		return nil, fmt.Errorf("CA store: authorities: no active authority, only a prepared one")
	}
	return auths, nil
}

func setDefaults(o *Options) {
	if o.SVIDTTL == 0 {
		o.SVIDTTL = DefaultSVIDTTL
	}
	if o.JWTTTL == 0 {
		o.JWTTTL = DefaultJWTTTL
	}
	if o.CATTL == 0 {
		o.CATTL = DefaultCATTL
	}
	if o.Overlap == 0 {
		o.Overlap = DefaultOverlap
	}
	if o.RefreshHint == 0 {
		o.RefreshHint = DefaultRefreshHint
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// TrustDomain returns the CA's trust domain.
func (c *CA) TrustDomain() spiffeid.TrustDomain { return c.opts.TrustDomain }

// SVIDTTL returns the default X.509-SVID lifetime.
func (c *CA) SVIDTTL() time.Duration { return c.opts.SVIDTTL }

// Overlap returns how long a rotated-out root stays trusted; no SVID may
// live longer.
func (c *CA) Overlap() time.Duration { return c.opts.Overlap }

// Now returns the CA's clock, so callers scheduling renewals agree with it.
func (c *CA) Now() time.Time { return c.opts.Now() }

// Updated returns a channel closed at the next change of the trusted set
// (rotation or retirement). Take it before reading the bundle so no change is missed.
func (c *CA) Updated() <-chan struct{} {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.updated
}

// ActiveID names the signing authority; it changes on activation, which tells
// SVID caches to reissue.
func (c *CA) ActiveID() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.activeLocked().inter.SerialNumber.Text(16)
}

// activeLocked returns the authority that signs: the newest one not merely prepared.
func (c *CA) activeLocked() *authority {
	for _, a := range c.auths {
		if !a.prepared {
			return a
		}
	}
	panic("ca: no active authority") // New and Activate keep one; a state without is rejected at load
}

func (c *CA) preparedLocked() *authority {
	if c.auths[0].prepared {
		return c.auths[0]
	}
	return nil
}

func (c *CA) active() *authority {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.activeLocked()
}

// IssueX509SVID makes a fresh key and an X.509-SVID for id, chained leaf then
// intermediate. ttl <= 0 means the CA's default; the lifetime is capped at the
// intermediate's expiry.
func (c *CA) IssueX509SVID(id spiffeid.ID, ttl time.Duration) (*x509svid.SVID, error) {
	if err := c.checkMember(id); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		ttl = c.opts.SVIDTTL
	}
	key, err := c.opts.KeyType.generate()
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	a := c.active()
	now := c.opts.Now()
	notAfter := now.Add(ttl)
	if notAfter.After(a.inter.NotAfter) {
		notAfter = a.inter.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{Organization: []string{organization}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		// X509-SVID §4.3: leaves must have digitalSignature and must not have
		// keyCertSign/cRLSign; keyEncipherment only means something for RSA
		// key transport, and these keys are ECDSA.
		KeyUsage: x509.KeyUsageDigitalSignature,
		// X509-SVID §4.4: when EKU is present both serverAuth and clientAuth are set.
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.inter, key.Public(), a.interKey)
	if err != nil {
		return nil, fmt.Errorf("sign X.509-SVID for %s: %w", id, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{leaf, a.inter}, PrivateKey: key}, nil
}

func (c *CA) checkMember(id spiffeid.ID) error {
	if id.IsZero() {
		return errors.New("SVID: SPIFFE ID is empty")
	}
	if !id.MemberOf(c.opts.TrustDomain) {
		return fmt.Errorf("SVID %s: not a member of trust domain %s", id, c.opts.TrustDomain)
	}
	if id.Path() == "" {
		return fmt.Errorf("SVID %s: a workload ID needs a path (X509-SVID §3.1)", id)
	}
	return nil
}

// Bundle returns the trust domain's bundle: every root still trusted, every
// JWT key still trusted, the refresh hint and the sequence number.
func (c *CA) Bundle() *spiffebundle.Bundle {
	c.mu.RLock()
	defer c.mu.RUnlock()
	b := spiffebundle.New(c.opts.TrustDomain)
	for _, a := range c.auths {
		b.AddX509Authority(a.root)
		// Keys IDs are unique per authority, so this cannot fail.
		_ = b.AddJWTAuthority(a.jwtKID, a.jwtKey.Public())
	}
	b.SetRefreshHint(c.opts.RefreshHint)
	b.SetSequenceNumber(c.seq)
	return b
}

// GetBundleForTrustDomain implements spiffebundle.Source.
func (c *CA) GetBundleForTrustDomain(td spiffeid.TrustDomain) (*spiffebundle.Bundle, error) {
	if td != c.opts.TrustDomain {
		return nil, fmt.Errorf("CA %s: no bundle for trust domain %q", c.opts.TrustDomain, td)
	}
	return c.Bundle(), nil
}

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (c *CA) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	b, err := c.GetBundleForTrustDomain(td)
	if err != nil {
		return nil, err
	}
	return b.X509Bundle(), nil
}

// GetJWTBundleForTrustDomain implements jwtbundle.Source.
func (c *CA) GetJWTBundleForTrustDomain(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	b, err := c.GetBundleForTrustDomain(td)
	if err != nil {
		return nil, err
	}
	return b.JWTBundle(), nil
}

// Prepare adds a new root, intermediate and JWT key to the bundle without
// signing with them yet (SPIRE's "prepared" slot). Peers and workloads learn
// the new root from the bundle first, so that once Activate switches signing,
// nothing they see is signed by a root they do not know yet; in particular a
// federated peer authenticates the https_spiffe bundle endpoint with the
// bundle it last fetched. A second Prepare before Activate is a no-op.
func (c *CA) Prepare(ctx context.Context) error {
	c.mu.RLock()
	already := c.preparedLocked() != nil
	c.mu.RUnlock()
	if already {
		return nil
	}
	a, err := newAuthority(c.opts.TrustDomain, c.opts.KeyType, c.opts.Now(), c.opts.CATTL)
	if err != nil {
		return err
	}
	a.prepared = true
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.preparedLocked() != nil { // lost a race with another Prepare
		return nil
	}
	c.auths = append([]*authority{a}, c.auths...)
	if err := c.changedLocked(ctx, true); err != nil {
		c.auths = c.auths[1:]
		return err
	}
	c.stats.Prepared++
	c.log.Info("prepared CA", "root", a.root.SerialNumber.Text(16))
	return nil
}

// Activate starts signing with the prepared authority. The previous active
// authority stays trusted until now+Overlap (or its expiry, if sooner) so the
// SVIDs it signed keep verifying while workloads are pushed new ones. The
// bundle's contents do not change, so its sequence number does not either;
// watchers are still woken so SVID caches reissue.
func (c *CA) Activate(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.preparedLocked()
	if p == nil {
		return fmt.Errorf("CA %s: no prepared authority to activate", c.opts.TrustDomain)
	}
	now := c.opts.Now()
	// Remember what changes, to undo it if the new state cannot be saved.
	oldRetire := make([]time.Time, len(c.auths))
	for i, a := range c.auths {
		oldRetire[i] = a.retireAt
	}
	p.prepared = false
	for _, old := range c.auths[1:] {
		retire := now.Add(c.opts.Overlap)
		if retire.After(old.root.NotAfter) {
			retire = old.root.NotAfter
		}
		if old.retireAt.IsZero() || old.retireAt.After(retire) {
			old.retireAt = retire
		}
	}
	if err := c.changedLocked(ctx, false); err != nil {
		p.prepared = true
		for i, a := range c.auths {
			a.retireAt = oldRetire[i]
		}
		return err
	}
	c.stats.Activated++
	c.log.Info("activated CA", "root", p.root.SerialNumber.Text(16), "previousTrustedUntil", c.auths[1].retireAt)
	return nil
}

// Rotate is Prepare then Activate at once: for an operator who must replace
// the CA now (say, a leaked key). Federated peers that have not fetched the
// new bundle reject the bundle endpoint and new SVIDs until they fetch it out
// of band; Maintain's schedule avoids that by preparing long before activating.
func (c *CA) Rotate(ctx context.Context) error {
	if err := c.Prepare(ctx); err != nil {
		return err
	}
	return c.Activate(ctx)
}

// Maintain runs the rotation schedule, as SPIRE does: prepare a successor
// once the active root is half-way through its life, activate it at five
// sixths, and drop authorities whose overlap has ended. It returns when it next
// needs to run. Run calls it on a timer; it is exported for callers with their
// own scheduling (and for tests with a fake clock).
func (c *CA) Maintain(ctx context.Context) (time.Time, error) {
	now := c.opts.Now()
	prepareAt, activateAt := c.schedule()
	c.mu.RLock()
	prepared := c.preparedLocked() != nil
	c.mu.RUnlock()
	if !prepared && !now.Before(prepareAt) {
		if err := c.Prepare(ctx); err != nil {
			return now.Add(time.Minute), err
		}
		prepared = true
		prepareAt, activateAt = c.schedule() // the successor's publication time counts now
	}
	if prepared && !now.Before(activateAt) {
		if err := c.Activate(ctx); err != nil {
			return now.Add(time.Minute), err
		}
		prepareAt, activateAt = c.schedule()
		prepared = false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	active := c.activeLocked()
	var kept []*authority
	for _, a := range c.auths {
		if a.prepared || a == active || (now.Before(a.retireAt) && now.Before(a.root.NotAfter)) {
			kept = append(kept, a)
		} else {
			c.log.Info("retired CA", "root", a.root.SerialNumber.Text(16))
		}
	}
	if len(kept) != len(c.auths) {
		old := c.auths
		c.auths = kept
		if err := c.changedLocked(ctx, true); err != nil {
			c.auths = old
			return now.Add(time.Minute), err
		}
	}
	next := prepareAt
	if prepared {
		next = activateAt
	}
	for _, a := range c.auths {
		if !a.retireAt.IsZero() && a.retireAt.Before(next) {
			next = a.retireAt
		}
	}
	return next, nil
}

// schedule returns when the active root's successor is prepared and
// activated: at half and five sixths of the active authority's life, counted
// from its creation. (Its certificates are backdated for clock skew; with
// lifetimes of seconds, counting from NotBefore would pull both steps early.)
// A successor that was prepared late, say because no replica ran at
// half-life, is still published for a while before it signs: without that,
// a peer or node agent that has not yet read the new root would be shown
// certificates it cannot verify.
func (c *CA) schedule() (prepareAt, activateAt time.Time) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	a := c.activeLocked()
	born := a.created
	if born.IsZero() || born.Before(a.root.NotBefore) {
		born = a.root.NotBefore // a state saved without createdAt
	}
	life := a.root.NotAfter.Sub(born)
	prepareAt, activateAt = born.Add(life/2), born.Add(life*5/6)
	if p := c.preparedLocked(); p != nil {
		publish := min(activateAt.Sub(prepareAt), a.inter.NotAfter.Sub(p.created)/2)
		activateAt = later(activateAt, p.created.Add(publish))
	}
	return prepareAt, activateAt
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Run calls Maintain whenever it is due, until ctx ends. The caller owns the
// goroutine. Only one replica of a shared store may run it at a time (see
// RunShared); if another one saved first all the same, the conflict makes
// Run adopt the stored state (Reload) and plan again from there.
func (c *CA) Run(ctx context.Context) error {
	for {
		next, err := c.Maintain(ctx)
		if errors.Is(err, ErrConflict) {
			c.log.Warn("CA state changed in the store; reloading it", "err", err)
			if _, rerr := c.Reload(ctx); rerr != nil {
				c.log.Error("CA reload failed", "err", rerr)
			} else {
				next = c.opts.Now() // plan again from the state just read
			}
		} else if err != nil {
			c.log.Error("CA maintenance failed", "err", err)
		}
		t := time.NewTimer(max(next.Sub(c.opts.Now()), minMaintainWait))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// changedLocked persists the authorities (with the sequence number bumped if
// the bundle's contents changed), then publishes: the new sequence number and
// a wake-up of watchers. Persisting first means a restart never publishes an
// older sequence number; on a save error nothing is published and the caller
// undoes its change.
func (c *CA) changedLocked(ctx context.Context, bundleChanged bool) error {
	seq := c.seq
	if bundleChanged {
		seq++
	}
	if err := c.saveLocked(ctx, seq); err != nil {
		return err
	}
	c.seq = seq
	close(c.updated)
	c.updated = make(chan struct{})
	return nil
}

func (c *CA) saveLocked(ctx context.Context, seq uint64) error {
	st := &State{TrustDomain: c.opts.TrustDomain.Name(), Sequence: seq}
	for _, a := range c.auths {
		as, err := a.state()
		if err != nil {
			return err
		}
		st.Authorities = append(st.Authorities, as)
	}
	// A directory is saved only over the state this instance last saw
	// (nothing, for a CA being created), so a directory other processes
	// share is never overwritten with a diverged state. Only a DirStore
	// itself: a type embedding one has Save of its own to honour.
	// SecretStore needs nothing here: it remembers the resourceVersion it
	// read and conflicts by itself.
	expect := func(current *State) bool {
		return (current == nil && c.stored == "") || (current != nil && stateKey(current) == c.stored)
	}
	var err error
	switch d := c.opts.Store.(type) {
	case DirStore:
		err = d.saveIf(ctx, st, expect)
	case *DirStore:
		err = d.saveIf(ctx, st, expect)
	default:
		err = c.opts.Store.Save(ctx, st)
	}
	if err != nil {
		return err
	}
	c.stored = stateKey(st)
	return nil
}

// stateKey names a stored state by what can change in it: the sequence
// number and, per authority, its intermediate, whether it is prepared and
// when it retires.
func stateKey(st *State) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%d", st.TrustDomain, st.Sequence)
	for _, a := range st.Authorities {
		fmt.Fprintf(&b, "|%x/%t/%d", sha256.Sum256([]byte(a.IntermediateCert)), a.Prepared, a.RetireAt.UnixNano())
	}
	return b.String()
}
