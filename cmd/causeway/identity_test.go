package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/causeway-mesh/causeway/deploy"
	"github.com/causeway-mesh/causeway/identity/attest"
	"github.com/causeway-mesh/causeway/identity/ca"
	"github.com/causeway-mesh/causeway/internal/kubetest"
)

func TestIdentityCACommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	td := spiffeid.RequireTrustDomainFromString("test.local")
	flags := []string{"--ca-dir", dir, "--trust-domain", td.Name()}
	show := func(t *testing.T) *spiffebundle.Bundle {
		t.Helper()
		code, out, errOut := causeway(t, "", append([]string{"identity", "ca", "show", "-o", "spiffe"}, flags...)...)
		if code != 0 {
			t.Fatalf("show: exit %d: %s", code, errOut)
		}
		b, err := spiffebundle.Parse(td, []byte(out))
		if err != nil {
			t.Fatalf("show printed no SPIFFE bundle: %v\n%s", err, out)
		}
		return b
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"init creates", []string{"identity", "ca", "init"}, 0, "bundle sequence 1"},
		{"init again loads", []string{"identity", "ca", "init"}, 0, "bundle sequence 1"},
		{"show pem", []string{"identity", "ca", "show"}, 0, "BEGIN CERTIFICATE"},
		{"show unknown format", []string{"identity", "ca", "show", "-o", "xml"}, 2, ""},
		{"rotate", []string{"identity", "ca", "rotate"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := causeway(t, "", append(tt.args, flags...)...)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, errOut, tt.wantCode, tt.wantOut)
			}
		})
	}
	b := show(t)
	if seq, _ := b.SequenceNumber(); seq != 2 || len(b.X509Authorities()) != 2 {
		t.Errorf("after rotate: sequence %d, %d roots; want 2 and 2", seq, len(b.X509Authorities()))
	}
	fi, err := os.Stat(filepath.Join(dir, "ca.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ca.json: %v, mode %v; want 0600", err, fi.Mode())
	}
}

func TestIdentityServeUsage(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
	}{
		{"no socket", []string{"identity", "serve", "--entry", "uid:1=a/b"}},
		{"no entries", []string{"identity", "serve", "--socket", filepath.Join(dir, "s")}},
		{"bad entry", []string{"identity", "serve", "--socket", filepath.Join(dir, "s"), "--entry", "uid:x=a/b"}},
		{"bad trust domain", []string{"identity", "serve", "--socket", filepath.Join(dir, "s"), "--entry", "uid:1=a/b", "--trust-domain", "Bad!"}},
		{"unknown attestation", []string{"identity", "serve", "--socket", filepath.Join(dir, "s"), "--attest", "k8s_psat"}},
		{"entries with tokenreview", []string{"identity", "serve", "--socket", filepath.Join(dir, "s"), "--attest", "tokenreview", "--entry", "uid:1=a/b"}},
		{"bad CA Secret", []string{"identity", "serve", "--socket", filepath.Join(dir, "s"), "--entry", "uid:1=a/b", "--ca-secret", "no-slash"}},
		{"bad federation Secret", []string{"identity", "serve", "--socket", filepath.Join(dir, "s"), "--entry", "uid:1=a/b", "--federation-secret", "no-slash"}},
		{"federation file and Secret", []string{"identity", "serve", "--socket", filepath.Join(dir, "s"), "--entry", "uid:1=a/b", "--federation-secret", "a/b", "--federation-state", filepath.Join(dir, "f")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, _, errOut := causeway(t, "", append(tt.args, "--ca-dir", filepath.Join(dir, "ca"))...); code != 2 {
				t.Errorf("exit %d (%s), want 2", code, errOut)
			}
		})
	}
}

// TestIdentityServe runs what `causeway identity serve` runs and fetches an
// SVID over the socket with go-spiffe; cancelling stops it and removes the socket.
func TestIdentityServe(t *testing.T) {
	sockDir, err := os.MkdirTemp("", "cw-cmd-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	socket := filepath.Join(sockDir, "api.sock")
	quiet := slog.New(slog.DiscardHandler)
	td := spiffeid.RequireTrustDomainFromString("test.local")
	c, err := ca.New(context.Background(), ca.Options{TrustDomain: td, Store: ca.DirStore{Dir: t.TempDir()}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	e, err := attest.ParseEntry("uid:" + strconv.Itoa(os.Getuid()) + "=shop/web")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	tab, err := attest.NewTable(td, []attest.Entry{e})
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- serveIdentity(ctx, quiet, c, c.Run, tab, socket, "127.0.0.1:0", nil, 0) }()

	// The socket appears once serveIdentity has listened; a fetch before
	// that would fail to dial.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(socket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket %s never appeared", socket)
		}
	}
	fetchCtx, fetchCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer fetchCancel()
	svid, err := workloadapi.FetchX509SVID(fetchCtx, workloadapi.WithAddr("unix://"+socket))
	if err != nil {
		t.Fatal(err)
	}
	if svid.ID.String() != "spiffe://test.local/ns/shop/sa/web" {
		t.Errorf("SVID ID = %s", svid.ID)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serveIdentity after cancel: %v", err)
	}
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

// TestDeployNodeAgentArgs: the node agent's args in deploy/base parse
// with `identity serve`'s flags and make it a follower of the control
// plane's CA Secret that attests with TokenReview, so the manifest and the
// command cannot drift.
func TestDeployNodeAgentArgs(t *testing.T) {
	t.Parallel()
	data, err := deploy.FS.ReadFile("base/node-agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := kubetest.Parse("base/node-agent.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range docs {
		if d.Obj.GetKind() != "DaemonSet" {
			continue
		}
		var ds appsv1.DaemonSet
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(d.Obj.Object, &ds); err != nil {
			t.Fatal(err)
		}
		c := ds.Spec.Template.Spec.Containers[0]
		found = true
		cmd, _, err := newRootCmd().Find(c.Args)
		if err != nil || cmd.Name() != "serve" || cmd.Parent().Name() != "identity" {
			t.Fatalf("container %s args %q: not `identity serve` (%v)", c.Name, c.Args, err)
		}
		if err := cmd.ParseFlags(c.Args[2:]); err != nil {
			t.Fatalf("container %s args %v: %v", c.Name, c.Args, err)
		}
		want := map[string]string{"attest": attestTokenReview, "ca-lease": "", "ca-secret": "causeway-system/causeway-ca",
			"socket": "/run/causeway/sockets/api.sock", "federation-secret": "causeway-system/causeway-federation"}
		for name, v := range want {
			if got, _ := cmd.Flags().GetString(name); got != v {
				t.Errorf("--%s = %q, want %q", name, got, v)
			}
		}
	}
	if !found {
		t.Fatal("no DaemonSet in deploy/base/node-agent.yaml")
	}
}
