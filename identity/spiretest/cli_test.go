package spiretest_test

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/causeway-mesh/causeway/identity/attest"
	"github.com/causeway-mesh/causeway/identity/bundle"
	"github.com/causeway-mesh/causeway/identity/identitytest"
	"github.com/causeway-mesh/causeway/identity/spiretest"
)

// TestSPIREAgentCLIAgainstCauseway points SPIRE's own Workload API client
// (spire-agent api ...) at Causeway's Workload API: a client written for a
// SPIRE agent must work against Causeway unchanged.
func TestSPIREAgentCLIAgainstCauseway(t *testing.T) {
	_, agent := spiretest.Binaries(t)
	c := identitytest.NewCA(t, spiffeid.RequireTrustDomainFromString("cluster.local"), nil)
	peer := identitytest.NewCA(t, spiffeid.RequireTrustDomainFromString("peer.test"), nil)
	known := strings.TrimPrefix(identitytest.StartWorkloadAPI(t, c, identitytest.WorkloadAPI{
		Entries: identitytest.Self(t, "shop/web", ""), Federated: bundle.NewSet(peer.Bundle())}), "unix://")
	unknown := strings.TrimPrefix(identitytest.StartWorkloadAPI(t, c, identitytest.WorkloadAPI{
		Entries: []attest.Entry{identitytest.Other(t, "shop/web")}}), "unix://")
	run := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		out, err := exec.Command(agent, append([]string{"api"}, args...)...).CombinedOutput()
		return string(out), err
	}

	t.Run("fetch x509 writes SVID, key, bundle and federated bundle", func(t *testing.T) {
		dir := t.TempDir()
		if out, err := run(t, "fetch", "x509", "-socketPath", known, "-write", dir); err != nil {
			t.Fatalf("spire-agent api fetch x509: %v\n%s", err, out)
		}
		svid, err := x509svid.Load(filepath.Join(dir, "svid.0.pem"), filepath.Join(dir, "svid.0.key"))
		if err != nil {
			t.Fatal(err)
		}
		if id, _, err := x509svid.Verify(svid.Certificates, c); err != nil || id.String() != "spiffe://cluster.local/ns/shop/sa/web" {
			t.Errorf("written SVID: %v, %v", id, err)
		}
		for file, want := range map[string]*x509bundle.Bundle{
			"bundle.0.pem":             c.Bundle().X509Bundle(),
			"federated_bundle.0.0.pem": peer.Bundle().X509Bundle(),
		} {
			got, err := x509bundle.Load(want.TrustDomain(), filepath.Join(dir, file))
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if !got.Equal(want) {
				t.Errorf("%s holds other roots than %s's bundle", file, want.TrustDomain())
			}
		}
	})
	t.Run("fetch jwt then validate jwt", func(t *testing.T) {
		out, err := run(t, "fetch", "jwt", "-audience", "orders", "-socketPath", known)
		if err != nil {
			t.Fatalf("spire-agent api fetch jwt: %v\n%s", err, out)
		}
		m := regexp.MustCompile(`token\(spiffe://cluster.local/ns/shop/sa/web\):\s+(\S+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no token for ns/shop/sa/web in output:\n%s", out)
		}
		out, err = run(t, "validate", "jwt", "-audience", "orders", "-svid", m[1], "-socketPath", known)
		if err != nil || !strings.Contains(out, "SVID is valid.") || !strings.Contains(out, "spiffe://cluster.local/ns/shop/sa/web") {
			t.Errorf("spire-agent api validate jwt: %v\n%s", err, out)
		}
		out, err = run(t, "validate", "jwt", "-audience", "billing", "-svid", m[1], "-socketPath", known)
		if err == nil {
			t.Errorf("validate jwt accepted the wrong audience:\n%s", out)
		}
	})
	t.Run("unknown caller is refused", func(t *testing.T) {
		out, err := run(t, "fetch", "x509", "-socketPath", unknown, "-timeout", "3s")
		if err == nil || !strings.Contains(out, "PermissionDenied") {
			t.Errorf("want a PermissionDenied failure, got %v:\n%s", err, out)
		}
	})
}
