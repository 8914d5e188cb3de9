// Package spiretest runs a real SPIRE server and agent on loopback for
// interoperability tests. It is imported only from _test.go files.
//
// Enters: the spire-server and spire-agent binaries built by scripts/spire.sh
// (found through CAUSEWAY_SPIRE_BIN or that script's default cache directory),
// and registration requests. Leaves: the agent's Workload API socket, where
// go-spiffe clients fetch SPIRE-issued SVIDs. The server uses join-token node
// attestation; the agent uses the unix workload attestor, so entries select
// workloads by unix:uid:N, as Causeway's local attestor does.
//
// Processes: Start launches both as children of the test process and kills
// them by PID in t.Cleanup; their logs go to files in the run directory and are
// printed when the test fails.
package spiretest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/loopback"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// Version is the SPIRE release scripts/spire.sh builds; keep the two in step.
const Version = "v1.13.3"

// RequireEnv, when set to anything, turns missing binaries into a failure
// instead of a skip. CI sets it after running scripts/spire.sh.
const RequireEnv = "CAUSEWAY_REQUIRE_SPIRE"

// BinEnv overrides where the binaries are looked for.
const BinEnv = "CAUSEWAY_SPIRE_BIN"

// Binaries returns the paths of spire-server and spire-agent. When they are
// absent the test is skipped, or fails if RequireEnv is set.
func Binaries(t testing.TB) (server, agent string) {
	t.Helper()
	dir := os.Getenv(BinEnv)
	if dir == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(cache, "causeway", "spire-"+Version, "bin")
	}
	server, agent = filepath.Join(dir, "spire-server"), filepath.Join(dir, "spire-agent")
	for _, p := range []string{server, agent} {
		if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
			if os.Getenv(RequireEnv) != "" {
				t.Fatalf("spiretest: %s missing and %s is set; build it with scripts/spire.sh", p, RequireEnv)
			}
			t.Skipf("spiretest: %s missing; run scripts/spire.sh to build SPIRE %s (set %s to make this a failure)", p, Version, RequireEnv)
		}
	}
	if testing.Short() && os.Getenv(RequireEnv) == "" {
		t.Skip("spiretest: skipping real SPIRE in -short mode")
	}
	return server, agent
}

// SPIRE is a running server + agent pair.
type SPIRE struct {
	TrustDomain spiffeid.TrustDomain
	NodeID      spiffeid.ID // the agent's ID; parent of every registered entry
	Dir         string
	// AgentAddr is the agent's Workload API address in go-spiffe's form.
	AgentAddr string
	// BundleEndpointURL is the server's https_spiffe bundle endpoint, set
	// when Options.BundleEndpoint asked for one; ServerID is the ID it presents.
	BundleEndpointURL string
	ServerID          spiffeid.ID
	// Started is when the server process was launched; AgentReady when the
	// agent's health check first passed.
	Started, AgentReady time.Time

	serverBin, serverSock string
}

// Options configures Start.
type Options struct {
	TrustDomain string // default "spire.test"
	// BundleEndpoint makes the server publish its bundle (https_spiffe) on a
	// loopback port, for federation tests.
	BundleEndpoint bool
}

// Start runs spire-server and spire-agent on loopback and returns when both
// are healthy. Everything is torn down when the test ends.
func Start(t testing.TB, opts Options) *SPIRE {
	t.Helper()
	serverBin, agentBin := Binaries(t)
	if opts.TrustDomain == "" {
		opts.TrustDomain = "spire.test"
	}
	td, err := spiffeid.TrustDomainFromString(opts.TrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	// A short directory: the agent socket path must fit in sun_path (108 bytes).
	dir, err := os.MkdirTemp("", "cw-spire-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
		}
	})
	for _, d := range []string{"server/data", "agent/data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	s := &SPIRE{
		TrustDomain: td,
		NodeID:      spiffeid.RequireFromPath(td, "/node/causeway-test"),
		Dir:         dir,
		AgentAddr:   "unix://" + filepath.Join(dir, "agent", "api.sock"),
		serverBin:   serverBin,
		serverSock:  filepath.Join(dir, "server", "api.sock"),
		ServerID:    spiffeid.RequireFromPath(td, "/spire/server"),
	}
	// Both ports in one call: two calls could each find the same port free,
	// as nothing binds either until SPIRE starts.
	ports := freePorts(t, 2)
	port := ports[0]
	federation := ""
	if opts.BundleEndpoint {
		bePort := ports[1]
		s.BundleEndpointURL = fmt.Sprintf("https://127.0.0.1:%d", bePort)
		federation = fmt.Sprintf(federationConf, bePort)
	}
	write(t, filepath.Join(dir, "server.conf"), fmt.Sprintf(serverConf, port, s.serverSock, td.Name(), dir, federation))
	write(t, filepath.Join(dir, "agent.conf"), fmt.Sprintf(agentConf, dir, port, dir, dir, td.Name()))

	s.Started = time.Now()
	s.spawn(t, "server", serverBin, "run", "-config", filepath.Join(dir, "server.conf"))
	s.waitHealthy(t, "server", serverBin, s.serverSock)

	bundlePath := filepath.Join(dir, "bundle.pem")
	write(t, bundlePath, s.ServerCLI(t, "bundle", "show"))
	out := s.ServerCLI(t, "token", "generate", "-spiffeID", s.NodeID.String(), "-ttl", "600")
	token, ok := strings.CutPrefix(strings.TrimSpace(out), "Token: ")
	if !ok {
		t.Fatalf("spiretest: unexpected token output %q", out)
	}
	s.spawn(t, "agent", agentBin, "run", "-config", filepath.Join(dir, "agent.conf"), "-joinToken", token)
	s.waitHealthy(t, "agent", agentBin, filepath.Join(dir, "agent", "api.sock"))
	s.AgentReady = time.Now()
	return s
}

// ServerCLI runs a spire-server subcommand against the server's admin socket
// and returns its stdout.
func (s *SPIRE) ServerCLI(t testing.TB, args ...string) string {
	t.Helper()
	full := append(args[:len(args):len(args)], "-socketPath", s.serverSock)
	cmd := exec.Command(s.serverBin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("spiretest: spire-server %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// RegisterUID creates an entry giving id to processes of the given uid on the
// test's agent node; federatesWith lists trust domains whose bundles the
// agent should deliver with that SVID.
func (s *SPIRE) RegisterUID(t testing.TB, id spiffeid.ID, uid int, ttl time.Duration, federatesWith ...spiffeid.TrustDomain) {
	t.Helper()
	s.Register(t, id, []string{"unix:uid:" + strconv.Itoa(uid)}, ttl, federatesWith...)
}

// Register creates an entry giving id to workloads on the test's agent node
// that match every selector (SPIRE syntax, e.g. "unix:uid:1001",
// "unix:gid:20"). Processes started with a different uid (the tests may run
// as root) are the simplest way to give several workloads distinct identities.
func (s *SPIRE) Register(t testing.TB, id spiffeid.ID, selectors []string, ttl time.Duration, federatesWith ...spiffeid.TrustDomain) {
	t.Helper()
	args := []string{"entry", "create",
		"-parentID", s.NodeID.String(),
		"-spiffeID", id.String(),
		"-x509SVIDTTL", strconv.Itoa(int(ttl.Seconds()))}
	for _, sel := range selectors {
		args = append(args, "-selector", sel)
	}
	for _, td := range federatesWith {
		args = append(args, "-federatesWith", td.IDString())
	}
	s.ServerCLI(t, args...)
}

// Bundle returns the server's own bundle as SPIRE prints it (SPIFFE format).
func (s *SPIRE) Bundle(t testing.TB) *spiffebundle.Bundle {
	t.Helper()
	b, err := spiffebundle.Parse(s.TrustDomain, []byte(s.ServerCLI(t, "bundle", "show", "-format", "spiffe")))
	if err != nil {
		t.Fatalf("spiretest: parse bundle: %v", err)
	}
	return b
}

// Federate creates a federation relationship (https_spiffe) with a peer trust
// domain: SPIRE starts from peerBundle and then refreshes it from url,
// authenticating the endpoint as endpointID.
func (s *SPIRE) Federate(t testing.TB, peerBundle *spiffebundle.Bundle, url string, endpointID spiffeid.ID) {
	t.Helper()
	raw, err := peerBundle.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.Dir, "peer-"+peerBundle.TrustDomain().Name()+".json")
	write(t, path, string(raw))
	s.ServerCLI(t, "federation", "create",
		"-trustDomain", peerBundle.TrustDomain().Name(),
		"-bundleEndpointURL", url,
		"-bundleEndpointProfile", "https_spiffe",
		"-endpointSpiffeID", endpointID.String(),
		"-trustDomainBundlePath", path,
		"-trustDomainBundleFormat", "spiffe")
}

// WaitForSVIDs polls the agent until it serves an X.509-SVID for every id,
// and returns them by ID. The agent answers PermissionDenied until its first
// sync after registration, so errors before the deadline are retried.
func (s *SPIRE) WaitForSVIDs(t testing.TB, ctx context.Context, ids ...spiffeid.ID) map[spiffeid.ID]*x509svid.SVID {
	t.Helper()
	var lastErr error
	for {
		svids, err := workloadapi.FetchX509SVIDs(ctx, workloadapi.WithAddr(s.AgentAddr))
		if err == nil {
			got := map[spiffeid.ID]*x509svid.SVID{}
			for _, sv := range svids {
				got[sv.ID] = sv
			}
			missing := 0
			for _, id := range ids {
				if got[id] == nil {
					missing++
				}
			}
			if missing == 0 {
				return got
			}
			lastErr = fmt.Errorf("%d of %d SVIDs not served yet", missing, len(ids))
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("spiretest: no SVIDs from the agent: %v (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *SPIRE) spawn(t testing.TB, name, bin string, args ...string) {
	t.Helper()
	logPath := filepath.Join(s.Dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the test binary dies without running cleanups (a timeout panic, a
	// kill), the kernel ends SPIRE too rather than leaving it on its ports.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("spiretest: start %s: %v", name, err)
	}
	t.Cleanup(func() {
		// Our own child, ended by PID.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("spiretest: %s log (%s):\n%s", name, logPath, tail(string(b), 40))
		}
	})
}

func (s *SPIRE) waitHealthy(t testing.TB, name, bin, sock string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := exec.Command(bin, "healthcheck", "-socketPath", sock).Run()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("spiretest: %s not healthy after 60s: %v", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	// SPIRE needs fixed ports in its config; loopback.FreePorts picks
	// distinct ones below the ephemeral range, where other tests'
	// connections cannot take them before SPIRE binds.
	ports, err := loopback.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// federationConf: bundle endpoint port. Relationships are added at run time
// with "spire-server federation create", so none is configured here.
const federationConf = `
  federation {
    bundle_endpoint {
      address = "127.0.0.1"
      port = %d
      profile "https_spiffe" {}
    }
  }
`

// serverConf: port, socket, trust domain, run dir (twice), federation block.
const serverConf = `server {
  bind_address = "127.0.0.1"
  bind_port = "%d"
  socket_path = "%s"
  trust_domain = "%s"
  data_dir = "%[4]s/server/data"
  log_level = "INFO"
  default_x509_svid_ttl = "1h"
  ca_ttl = "24h"
  experimental {
    cache_reload_interval = "500ms"
  }
%[5]s}

plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = "%[4]s/server/data/datastore.sqlite3"
    }
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }
}
`

// agentConf: run dir, server port, run dir, run dir, trust domain. The short
// sync interval makes the first SVID appear in about two seconds.
const agentConf = `agent {
  data_dir = "%s/agent/data"
  log_level = "INFO"
  server_address = "127.0.0.1"
  server_port = "%d"
  socket_path = "%s/agent/api.sock"
  trust_bundle_path = "%s/bundle.pem"
  trust_domain = "%s"
  experimental {
    sync_interval = "500ms"
  }
}

plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`
