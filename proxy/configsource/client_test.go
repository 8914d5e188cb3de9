package configsource_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	configv1 "github.com/causeway-mesh/causeway/api/config/v1"
	"github.com/causeway-mesh/causeway/proxy/configsource"
	"github.com/causeway-mesh/causeway/spec"
	. "github.com/causeway-mesh/causeway/spec/spectest"
)

// fakeControl sends one response per stream and hands back the proxy's
// answer to it.
type fakeControl struct {
	configv1.UnimplementedConfigServiceServer
	resp    *configv1.StreamConfigResponse
	hellos  chan *configv1.StreamConfigRequest
	answers chan *configv1.StreamConfigRequest
}

func (f *fakeControl) StreamConfig(ss configv1.ConfigService_StreamConfigServer) error {
	hello, err := ss.Recv()
	if err != nil {
		return err
	}
	f.hellos <- hello
	if err := ss.Send(f.resp); err != nil {
		return err
	}
	ans, err := ss.Recv()
	if err != nil {
		return err
	}
	f.answers <- ans
	<-ss.Context().Done()
	return nil
}

func TestClientAcksAndNacks(t *testing.T) {
	node := spec.Node{ID: "api-0", Identity: ID("shop", "api")}
	good := spec.Compile(MustBuild(spec.Input{TrustDomain: TrustDomain, Services: []spec.Service{HTTPService("shop/api", 80, "127.0.0.1:8080")}}), node)
	corrupt := configv1.FromSpec(good)
	corrupt.Clusters[0].Identities = []string{"not a spiffe id"}
	cases := []struct {
		name       string
		resp       *configv1.StreamConfigResponse
		applyErr   error
		wantAck    string // version_info of the answer
		wantDetail string // substring of error_detail; "" for an ACK
		wantApply  bool
	}{
		{"valid config is applied and ACKed",
			&configv1.StreamConfigResponse{VersionInfo: good.Version, Nonce: "1", Config: configv1.FromSpec(good)}, nil, good.Version, "", true},
		{"apply error is NACKed with its text",
			&configv1.StreamConfigResponse{VersionInfo: good.Version, Nonce: "1", Config: configv1.FromSpec(good)}, errors.New("listener 0.0.0.0:80: permission denied"), "", "permission denied", true},
		{"undecodable config is NACKed without apply",
			&configv1.StreamConfigResponse{VersionInfo: good.Version, Nonce: "1", Config: corrupt}, nil, "", "clusters[0].identities[0]", false},
		{"version mismatch is NACKed without apply",
			&configv1.StreamConfigResponse{VersionInfo: "other", Nonce: "1", Config: configv1.FromSpec(good)}, nil, "", "differs", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeControl{resp: tc.resp, hellos: make(chan *configv1.StreamConfigRequest, 4), answers: make(chan *configv1.StreamConfigRequest, 4)}
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			gs := grpc.NewServer()
			configv1.RegisterConfigServiceServer(gs, fake)
			go func() { _ = gs.Serve(lis) }()
			defer gs.Stop()

			applied := make(chan *spec.NodeConfig, 1)
			c, err := configsource.New(configsource.Options{Addr: lis.Addr().String(), Node: node, AdminAddress: "127.0.0.1:9901",
				Apply: func(cfg *spec.NodeConfig) error { applied <- cfg; return tc.applyErr }})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = c.Run(ctx) }()
			defer func() { cancel(); <-done }()

			timeout := time.After(10 * time.Second)
			var hello, ans *configv1.StreamConfigRequest
			select {
			case hello = <-fake.hellos:
			case <-timeout:
				t.Fatal("no hello")
			}
			if hello.GetNode().GetId() != node.ID || hello.GetNode().GetAdminAddress() != "127.0.0.1:9901" || hello.GetVersionInfo() != "" {
				t.Errorf("hello = %v", hello)
			}
			select {
			case ans = <-fake.answers:
			case <-timeout:
				t.Fatal("no answer")
			}
			if ans.GetResponseNonce() != "1" || ans.GetVersionInfo() != tc.wantAck {
				t.Errorf("answer nonce %q version %q, want nonce 1 version %q", ans.GetResponseNonce(), ans.GetVersionInfo(), tc.wantAck)
			}
			if (tc.wantDetail == "") != (ans.GetErrorDetail() == "") || !strings.Contains(ans.GetErrorDetail(), tc.wantDetail) {
				t.Errorf("error_detail %q, want one containing %q", ans.GetErrorDetail(), tc.wantDetail)
			}
			select {
			case cfg := <-applied:
				if !tc.wantApply {
					t.Errorf("Apply was called with %s", cfg.Version)
				}
			default:
				if tc.wantApply {
					t.Error("Apply was not called")
				}
			}
			if got := c.Status().Version; got != tc.wantAck {
				t.Errorf("Status().Version = %q, want %q", got, tc.wantAck)
			}
		})
	}
}
