package metrics_test

import (
	"math"
	"strings"
	"testing"
	"time"

	smimetrics "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/metrics/v1alpha1"

	"github.com/causeway-mesh/causeway/control/metrics"
	"github.com/causeway-mesh/causeway/spec"
	. "github.com/causeway-mesh/causeway/spec/spectest"
)

// peerExposition is what a callee's proxy serves after 8 successful and 2
// failed requests from a linked cluster's callers (trust domain
// west.causeway.local), beside its ordinary inbound series.
const peerExposition = `# HELP causeway_inbound_peer_response_latency_seconds x
# TYPE causeway_inbound_peer_response_latency_seconds histogram
causeway_inbound_peer_response_latency_seconds_bucket{classification="success",service="shop/api",trust_domain="west.causeway.local",le="0.01"} 6
causeway_inbound_peer_response_latency_seconds_bucket{classification="success",service="shop/api",trust_domain="west.causeway.local",le="0.1"} 8
causeway_inbound_peer_response_latency_seconds_bucket{classification="success",service="shop/api",trust_domain="west.causeway.local",le="+Inf"} 8
causeway_inbound_peer_response_latency_seconds_sum{classification="success",service="shop/api",trust_domain="west.causeway.local"} 0.2
causeway_inbound_peer_response_latency_seconds_count{classification="success",service="shop/api",trust_domain="west.causeway.local"} 8
causeway_inbound_peer_response_latency_seconds_bucket{classification="failure",service="shop/api",trust_domain="west.causeway.local",le="0.01"} 0
causeway_inbound_peer_response_latency_seconds_bucket{classification="failure",service="shop/api",trust_domain="west.causeway.local",le="0.1"} 2
causeway_inbound_peer_response_latency_seconds_bucket{classification="failure",service="shop/api",trust_domain="west.causeway.local",le="+Inf"} 2
causeway_inbound_peer_response_latency_seconds_sum{classification="failure",service="shop/api",trust_domain="west.causeway.local"} 0.1
causeway_inbound_peer_response_latency_seconds_count{classification="failure",service="shop/api",trust_domain="west.causeway.local"} 2
# HELP causeway_responses_total x
# TYPE causeway_responses_total counter
causeway_responses_total{backend="app",classification="success",direction="inbound",grpc_status="",route="default",service="shop/api",status_code="200"} 18
`

// TestPeerCallersCount: requests from linked clusters' callers, seen only
// at the callee, are added to the service's and namespace's counts (local
// callers' stay counted once, at the caller) and become a from-edge named
// after the linked cluster.
func TestPeerCallersCount(t *testing.T) {
	flows, err := metrics.ParseFlows(strings.NewReader(peerExposition))
	if err != nil {
		t.Fatal(err)
	}
	peer := flows[metrics.FlowKey{Direction: metrics.Peer, Service: "shop/api", Backend: "west.causeway.local"}]
	if peer.Success != 8 || peer.Failure != 2 {
		t.Fatalf("peer flow %+v, want 8 successes and 2 failures", peer)
	}
	if p90, _ := metrics.Quantile(.9, peer.Latency); math.Abs(p90-(.01+.09*3/4)) > 1e-9 {
		t.Errorf("p90 = %v, want 0.0775: rank 9 of 10, 3 of the 4 in (0.01, 0.1] (both classifications' buckets merged)", p90)
	}

	local := metrics.Flow{Success: 10, Latency: []metrics.Bucket{{UpperBound: .01, Count: 10}, {UpperBound: math.Inf(1), Count: 10}}}
	snap := MustBuild(spec.Input{TrustDomain: TrustDomain, Services: []spec.Service{HTTPService("shop/api", 80, "127.0.0.1:8080")},
		Links: []spec.Link{{Cluster: "west", TrustDomain: "west.causeway.local", State: spec.LinkActive}}})
	v := metrics.View{Window: 10 * time.Second, Nodes: []metrics.Scrape{
		{Node: spec.Node{ID: "web-0"}, Flows: map[metrics.FlowKey]metrics.Flow{{Direction: "outbound", Service: "shop/api", Backend: "shop/api"}: local}},
		{Node: spec.Node{ID: "api-0", Services: []spec.Key{K("shop/api")}}, Flows: flows},
	}}
	q := metrics.Query{View: v, Snapshot: snap}
	for _, kn := range []string{"services", "namespaces"} {
		t.Run(kn, func(t *testing.T) {
			k, _ := metrics.LookupKind(kn)
			ns, name := "shop", "api"
			if kn == "namespaces" {
				ns, name = "", "shop"
			}
			got, err := q.Get(k, ns, name)
			if err != nil {
				t.Fatal(err)
			}
			tm := got.(*metrics.TrafficMetrics)
			if s, f := tm.Get("success_count").Value.Value(), tm.Get("failure_count").Value.Value(); s != 18 || f != 2 {
				t.Fatalf("success/failure = %d/%d, want 18/2 (10 local at the caller + 8/2 from west at the callee)", s, f)
			}
		})
	}
	t.Run("edges", func(t *testing.T) {
		k, _ := metrics.LookupKind("services")
		l, err := q.Edges(k, "shop", "api")
		if err != nil {
			t.Fatal(err)
		}
		var fromWest *metrics.TrafficMetrics
		for _, it := range l.Items {
			if it.Edge.Direction == smimetrics.From && it.Edge.Resource.Kind == "Cluster" && it.Edge.Resource.Name == "west" {
				fromWest = it
			}
		}
		if fromWest == nil {
			t.Fatalf("no from-edge for cluster west in %d edges", len(l.Items))
		}
		if n := fromWest.Get("success_count").Value.Value(); n != 8 {
			t.Errorf("west's edge success_count = %d, want 8", n)
		}
	})
}
