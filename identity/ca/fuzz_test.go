package ca

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// FuzzLoadState feeds arbitrary bytes as ca.json: New must never panic, and a
// state it accepts must yield a CA whose SVIDs verify against its bundle.
func FuzzLoadState(f *testing.F) {
	seedDir := f.TempDir()
	if _, err := New(context.Background(), Options{TrustDomain: td, Store: DirStore{Dir: seedDir}, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(seedDir, stateFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	var st State
	if err := json.Unmarshal(good, &st); err != nil {
		f.Fatal(err)
	}
	st.Authorities[0].IntermediateCert = st.Authorities[0].RootCert // keys no longer match their certificates
	bad, _ := json.Marshal(st)
	f.Add(bad)
	f.Add([]byte(`{"trustDomain":"cluster.local","authorities":[]}`))
	f.Add([]byte(`{"trustDomain":"cluster.local","authorities":[{"rootCert":"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, stateFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := New(context.Background(), Options{TrustDomain: td, Store: DirStore{Dir: dir}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return
		}
		svid, err := c.IssueX509SVID(spiffeid.RequireFromPath(td, "/ns/a/sa/b"), time.Minute)
		if err != nil {
			return // e.g. an expired intermediate; refusing is fine, panicking is not
		}
		if _, _, err := x509svid.Verify(svid.Certificates, c); err != nil {
			t.Fatalf("accepted state issues SVIDs that do not verify against its own bundle: %v", err)
		}
	})
}
