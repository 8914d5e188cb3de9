package federation

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/causeway-mesh/causeway/identity/identitytest"
	"github.com/causeway-mesh/causeway/spec"
)

// TestExportsBecomeImports peers west with east, then changes east's
// exports and checks what west imports: names, ports, identities, gateway
// endpoints, and that non-exported services never cross.
func TestExportsBecomeImports(t *testing.T) {
	east := newSide(t, "east", sideOpts{gateways: []string{"127.0.0.1:1", "127.0.0.2:1"}})
	west := newSide(t, "west", sideOpts{})
	link2(t, east, west)

	steps := []struct {
		name    string
		exports []string
		want    []string // keys imported on west
	}{
		{"one exported", []string{"web"}, []string{"shop/web-east"}},
		{"one added", []string{"web", "cart"}, []string{"shop/cart-east", "shop/web-east"}},
		{"one removed", []string{"cart"}, []string{"shop/cart-east"}},
		{"none", nil, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			drain(west.links.Changes())
			east.links.SetLocal(exportSnap(east, st.exports...))
			var got []string
			took := eventually(t, "west imports "+strings.Join(st.want, ","), waitLimit, func() bool {
				got = nil
				for _, s := range west.links.Imports().Services {
					got = append(got, s.Key.String())
				}
				return slices.Equal(got, st.want)
			})
			t.Logf("propagation east SetLocal -> west Imports: %s", took)
			select {
			case <-west.links.Changes():
			default:
				t.Error("west's imports changed but Changes did not fire")
			}
			for _, n := range st.exports {
				svc := importOf(west, spec.Key{Namespace: "shop", Name: n + "-east"})
				if svc.Export {
					t.Errorf("%s: import is exported again", svc.Key)
				}
				if want := []spec.Port{{Name: "http", Port: 8080, Protocol: spec.ProtocolHTTP}}; !slices.Equal(svc.Ports, want) {
					t.Errorf("%s: ports %v, want %v", svc.Key, svc.Ports, want)
				}
				if want := []spiffeid.ID{spiffeid.RequireFromPath(east.td, "/ns/shop/sa/"+n)}; !slices.Equal(svc.Identities, want) {
					t.Errorf("%s: identities %v, want %v", svc.Key, svc.Identities, want)
				}
				if len(svc.Endpoints) != 2 {
					t.Fatalf("%s: %d endpoints, want one per east gateway (2)", svc.Key, len(svc.Endpoints))
				}
				for i, ep := range svc.Endpoints {
					wantAddr := []string{"127.0.0.1", "127.0.0.2"}[i]
					if ep.Addr != wantAddr || ep.Port != 1 || ep.Gateway != gatewayID(east.td) ||
						ep.Remote != (spec.Key{Namespace: "shop", Name: n}) {
						t.Errorf("%s: endpoint %d = %+v, want %s:1 via %s to shop/%s", svc.Key, i, ep, wantAddr, gatewayID(east.td), n)
					}
				}
			}
		})
	}
	t.Run("link and bundles on both sides", func(t *testing.T) {
		l := linkOf(west, "east")
		if l == nil || l.State != spec.LinkActive || l.TrustDomain != east.td.Name() || !slices.Equal(l.GatewayAddrs, []string{"127.0.0.1:1", "127.0.0.2:1"}) {
			t.Errorf("west's link to east = %+v", l)
		}
		if l := linkOf(east, "west"); l == nil || l.State != spec.LinkActive {
			t.Errorf("east's link to west = %+v", l)
		}
		for _, c := range []struct{ holder, of *side }{{west, east}, {east, west}} {
			b, err := c.holder.set.GetX509BundleForTrustDomain(c.of.td)
			if err != nil {
				t.Fatalf("%s: %v", c.holder.name, err)
			}
			if !b.Equal(c.of.ca.Bundle().X509Bundle()) {
				t.Errorf("%s holds a bundle for %s that is not its CA's", c.holder.name, c.of.td)
			}
		}
	})
	t.Run("acks", func(t *testing.T) {
		eventually(t, "east sees west ACK its exports", waitLimit, func() bool {
			st := east.links.List()
			return len(st) == 1 && st[0].ExportAcked != "" && st[0].ExportNacked == ""
		})
	})
}

// TestBundleRotationReachesPeer rotates east's CA and waits for west's
// bundle set to hold the new roots.
func TestBundleRotationReachesPeer(t *testing.T) {
	east := newSide(t, "east", sideOpts{})
	west := newSide(t, "west", sideOpts{})
	link2(t, east, west)
	for i := range 2 {
		updated := west.set.Updated()
		start := time.Now()
		if err := east.ca.Rotate(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := east.ca.Bundle().X509Bundle()
		eventually(t, "west's bundle set holds east's rotated bundle", waitLimit, func() bool {
			b, err := west.set.GetX509BundleForTrustDomain(east.td)
			return err == nil && b.Equal(want)
		})
		took := time.Since(start)
		select {
		case <-updated:
		default:
			t.Errorf("rotation %d: west's bundle set changed without closing Updated", i)
		}
		t.Logf("rotation %d: east Rotate (incl. its own store writes) -> west bundle.Set: %s (%d roots)", i, took, len(want.X509Authorities()))
	}
}

// TestRevoke removes the link from either side: both lose every import and
// the other's bundle, and the dialler stops.
func TestRevoke(t *testing.T) {
	for _, from := range []string{"west (dialler)", "east (issuer)"} {
		t.Run(from, func(t *testing.T) {
			east := newSide(t, "east", sideOpts{gateways: []string{"127.0.0.1:1"}})
			west := newSide(t, "west", sideOpts{gateways: []string{"127.0.0.1:2"}})
			link2(t, east, west)
			east.links.SetLocal(exportSnap(east, "web"))
			west.links.SetLocal(exportSnap(west, "api"))
			eventually(t, "imports on both sides", waitLimit, func() bool {
				return importOf(west, spec.Key{Namespace: "shop", Name: "web-east"}) != nil &&
					importOf(east, spec.Key{Namespace: "shop", Name: "api-west"}) != nil
			})
			revoker, other := west, "east"
			if strings.HasPrefix(from, "east") {
				revoker, other = east, "west"
			}
			start := time.Now()
			if err := revoker.links.Remove(context.Background(), other); err != nil {
				t.Fatal(err)
			}
			eventually(t, "no imports, links or peer bundles on either side", waitLimit, func() bool {
				for _, s := range []*side{east, west} {
					in := s.links.Imports()
					if len(in.Services) > 0 || len(in.Links) > 0 || len(s.set.Bundles()) > 0 {
						return false
					}
				}
				return true
			})
			t.Logf("Remove -> both sides clean: %s", time.Since(start))
			if err := revoker.links.Remove(context.Background(), other); err == nil {
				t.Error("second Remove of the same link succeeded")
			}
		})
	}
}

// TestPeerAwayAndBack breaks the path between the clusters, either by
// closing it (the peer went away) or by silently dropping every byte (only
// heartbeats notice): the link stays, imports kept, until the heartbeat
// timeout, then is failed with its endpoints not ready; when the path is
// back the dialler reconnects and the link is active again.
func TestPeerAwayAndBack(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode relayMode
	}{{"peer gone", cut}, {"path silent", freeze}} {
		t.Run(tc.name, func(t *testing.T) {
			g := listenGateway(t)
			r := startRelay(t)
			east := newSide(t, "east", sideOpts{advertise: []string{r.addr()}, gateways: []string{g.addr}})
			r.setTarget(east.addr)
			g.serve(t, east)
			west := newSide(t, "west", sideOpts{})
			link2(t, east, west)
			east.links.SetLocal(exportSnap(east, "web"))
			ready := func() bool {
				svc := importOf(west, spec.Key{Namespace: "shop", Name: "web-east"})
				return svc != nil && len(svc.Endpoints) == 1 && svc.Endpoints[0].Ready
			}
			eventually(t, "west imports web-east, ready", waitLimit, ready)

			broken := time.Now()
			r.set(tc.mode)
			eventually(t, "west's link to east failed", waitLimit, func() bool {
				l := linkOf(west, "east")
				return l != nil && l.State == spec.LinkFailed
			})
			failedAfter := time.Since(broken)
			// Failing before the timeout would mean a disconnect alone fails
			// the link. It counts from the last message heard, not from the
			// break: on a loaded machine that message may be well older than
			// a heartbeat, and the link rightly fails that much sooner.
			if silent := time.Since(statusOf(t, west, "east").LastSeen); silent < timeout {
				t.Errorf("link failed %s after the break and %s after east was last heard, before the heartbeat timeout %s", failedAfter, silent, timeout)
			}
			if svc := importOf(west, spec.Key{Namespace: "shop", Name: "web-east"}); svc == nil || svc.Endpoints[0].Ready {
				t.Errorf("while failed: import %+v, want kept with endpoint not ready", svc)
			}
			eventually(t, "east's link to west failed", waitLimit, func() bool {
				l := linkOf(east, "west")
				return l != nil && l.State == spec.LinkFailed
			})
			t.Logf("break -> west link failed: %s (timeout %s)", failedAfter.Round(time.Millisecond), timeout)

			restored := time.Now()
			r.set(forward)
			eventually(t, "west's link to east active and ready again", waitLimit, func() bool {
				l := linkOf(west, "east")
				return l != nil && l.State == spec.LinkActive && ready()
			})
			t.Logf("path restored -> link active, endpoint ready: %s (backoff 20ms..200ms); outage %s",
				time.Since(restored).Round(time.Millisecond), time.Since(broken).Round(time.Millisecond))
		})
	}
}

// TestGatewayProbe stops east's gateway: west's endpoints for it become
// not ready; a new export still lists them, not ready.
func TestGatewayProbe(t *testing.T) {
	g := listenGateway(t)
	east := newSide(t, "east", sideOpts{gateways: []string{g.addr}})
	g.serve(t, east)
	west := newSide(t, "west", sideOpts{})
	link2(t, east, west)
	east.links.SetLocal(exportSnap(east, "web"))
	key := spec.Key{Namespace: "shop", Name: "web-east"}
	readyIs := func(want bool) func() bool {
		return func() bool {
			svc := importOf(west, key)
			return svc != nil && len(svc.Endpoints) == 1 && svc.Endpoints[0].Ready == want
		}
	}
	eventually(t, "endpoint ready while the gateway answers", waitLimit, readyIs(true))
	g.stop()
	took := eventually(t, "endpoint not ready once the gateway is gone", waitLimit, readyIs(false))
	t.Logf("gateway down -> endpoint not ready: %s (probe every %s)", took, probeIvl)
	if l := linkOf(west, "east"); l == nil || l.State != spec.LinkActive {
		t.Errorf("link = %+v; a gateway failure must not fail the link", l)
	}
}

// TestBadExportsNACKed: exports a peer cannot accept (a port of an unknown
// protocol) are NACKed with the reason, shown on the exporter's side, and
// the importer keeps the previous exports. (An identity outside the
// exporter's trust domain, the other refusal, never leaves SetLocal.)
func TestBadExportsNACKed(t *testing.T) {
	east := newSide(t, "east", sideOpts{})
	west := newSide(t, "west", sideOpts{})
	link2(t, east, west)
	east.links.SetLocal(exportSnap(east, "web"))
	eventually(t, "west imports web-east", waitLimit, func() bool {
		return importOf(west, spec.Key{Namespace: "shop", Name: "web-east"}) != nil
	})
	bad := exportSnap(east, "web", "cart")
	for i := range bad.Services {
		if bad.Services[i].Key.Name == "cart" {
			bad.Services[i].Ports = []spec.Port{{Name: "x", Port: 80, Protocol: "carrier-pigeon"}}
		}
	}
	east.links.SetLocal(bad)
	var nack string
	eventually(t, "east sees west's NACK", waitLimit, func() bool {
		st := east.links.List()
		nack = st[0].ExportNacked
		return nack != ""
	})
	if !strings.Contains(nack, `(shop/cart).ports[0]: invalid port 80/"carrier-pigeon"`) {
		t.Errorf("NACK reason %q does not name the field and the problem", nack)
	}
	if importOf(west, spec.Key{Namespace: "shop", Name: "cart-east"}) != nil || importOf(west, spec.Key{Namespace: "shop", Name: "web-east"}) == nil {
		t.Errorf("after a NACK west imports %v, want the previous exports (web-east only)", west.links.Imports().Services)
	}
	east.links.SetLocal(exportSnap(east, "web", "cart"))
	eventually(t, "a good export after the NACK is ACKed and imported", waitLimit, func() bool {
		return importOf(west, spec.Key{Namespace: "shop", Name: "cart-east"}) != nil && east.links.List()[0].ExportNacked == ""
	})
}

// TestWorkloadsGetPeerBundle: a Workload API serving west's bundle set hands
// east's roots to west's workloads as a federated bundle, and east's
// rotated bundle after a rotation.
func TestWorkloadsGetPeerBundle(t *testing.T) {
	east := newSide(t, "east", sideOpts{})
	west := newSide(t, "west", sideOpts{})
	addr := identitytest.StartWorkloadAPI(t, west.ca, identitytest.WorkloadAPI{
		Entries: identitytest.Self(t, "shop/web", ""), Federated: west.set})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	updates := make(chan *workloadapi.X509Context, 16)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		_ = client.WatchX509Context(ctx, &x509Watcher{ctx, updates})
	}()
	defer func() { cancel(); <-watchDone }()
	waitBundle := func(what string, want *x509bundle.Bundle) {
		t.Helper()
		for {
			select {
			case c := <-updates:
				if b, ok := c.Bundles.Get(east.td); ok && b.Equal(want) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("%s: workload never got east's bundle", what)
			}
		}
	}
	link2(t, east, west)
	waitBundle("after peering", east.ca.Bundle().X509Bundle())
	if err := east.ca.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitBundle("after east's rotation", east.ca.Bundle().X509Bundle())
}

type x509Watcher struct {
	ctx context.Context
	ch  chan<- *workloadapi.X509Context
}

func (w *x509Watcher) OnX509ContextUpdate(c *workloadapi.X509Context) {
	select {
	case w.ch <- c:
	case <-w.ctx.Done():
	}
}
func (w *x509Watcher) OnX509ContextWatchError(error) {}

func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// TestPeerRestartForgetsLink: links live in memory, so when east restarts
// (same CA, same address) west's reconnect is refused as "not linked" and
// west drops the link, its imports and east's bundle; a new token links
// them again.
func TestPeerRestartForgetsLink(t *testing.T) {
	r := startRelay(t)
	east := newSide(t, "east", sideOpts{advertise: []string{r.addr()}})
	r.setTarget(east.addr)
	west := newSide(t, "west", sideOpts{})
	link2(t, east, west)
	east.links.SetLocal(exportSnap(east, "web"))
	eventually(t, "west imports web-east", waitLimit, func() bool {
		return importOf(west, spec.Key{Namespace: "shop", Name: "web-east"}) != nil
	})

	east2 := newSideWithCA(t, "east", east.ca, sideOpts{advertise: []string{r.addr()}})
	r.setTarget(east2.addr)
	east.links.Close() // the old process is gone
	r.set(forward)     // and with it every connection
	took := eventually(t, "west drops the link east no longer has", waitLimit, func() bool {
		return len(west.links.List()) == 0 && len(west.links.Imports().Services) == 0 && len(west.set.Bundles()) == 0
	})
	t.Logf("east restart -> west dropped the link: %s", took)
	link2(t, east2, west)
	east2.links.SetLocal(exportSnap(east2, "web"))
	eventually(t, "relinked: west imports web-east again", waitLimit, func() bool {
		return importOf(west, spec.Key{Namespace: "shop", Name: "web-east"}) != nil
	})
}

// TestStateSurvivesRestart: with a state file, a restarted control plane
// (same CA, same address) keeps its links. Restarting the issuer, the
// dialler's reconnect is accepted; restarting the dialler, it trusts the
// peer at once from the saved bundle and dials it again.
func TestStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	eastState, westState := filepath.Join(dir, "east.json"), filepath.Join(dir, "west.json")
	r := startRelay(t)
	east := newSide(t, "east", sideOpts{advertise: []string{r.addr()}, stateFile: eastState})
	r.setTarget(east.addr)
	west := newSide(t, "west", sideOpts{stateFile: westState})
	link2(t, east, west)
	east.links.SetLocal(exportSnap(east, "web"))
	webEast := spec.Key{Namespace: "shop", Name: "web-east"}
	eventually(t, "west imports web-east", waitLimit, func() bool { return importOf(west, webEast) != nil })
	if fi, err := os.Stat(eastState); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("east's state file: %v, %v; want mode 0600", fi, err)
	}
	active := func(s *side, peer string) func() bool {
		return func() bool { l := linkOf(s, peer); return l != nil && l.State == spec.LinkActive }
	}

	outer := t // restarted sides live until the whole test ends
	t.Run("issuer restarts", func(t *testing.T) {
		east2 := newSideWithCA(outer, "east", east.ca, sideOpts{advertise: []string{r.addr()}, stateFile: eastState})
		if l := linkOf(east2, "west"); l == nil || l.State != spec.LinkPending {
			t.Fatalf("restored link = %+v, want pending until west is heard from", l)
		}
		r.setTarget(east2.addr)
		east.links.Close()
		r.set(forward)
		restarted := time.Now()
		east2.links.SetLocal(exportSnap(east2, "web", "cart"))
		eventually(t, "west reconnects to the restarted east and imports cart-east", waitLimit, func() bool {
			return active(east2, "west")() && active(west, "east")() && importOf(west, spec.Key{Namespace: "shop", Name: "cart-east"}) != nil
		})
		t.Logf("east restart -> link active again, new export imported: %s", time.Since(restarted).Round(time.Millisecond))
		east = east2
	})
	t.Run("dialler restarts", func(t *testing.T) {
		west.links.Close()
		west2 := newSideWithCA(outer, "west", west.ca, sideOpts{stateFile: westState})
		if _, err := west2.set.GetX509BundleForTrustDomain(east.td); err != nil {
			t.Fatalf("restarted west does not trust east from its state: %v", err)
		}
		restarted := time.Now()
		eventually(t, "restarted west dials east and imports web-east", waitLimit, func() bool {
			return active(west2, "east")() && importOf(west2, webEast) != nil
		})
		t.Logf("west restart -> link active, imports back: %s", time.Since(restarted).Round(time.Millisecond))
	})
}
