package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/internal/loopback"
	"github.com/causeway-mesh/causeway/spec"
)

// The cross-cluster systems: a west client sidecar sending to an east
// destination sidecar in front of the upstream, mTLS end to end across two
// trust domains, either directly (SysXDirect) or through east's east-west
// gateway (SysXGateway: outer mTLS to the gateway, inner mTLS to the
// destination, gateway/doc.go). The two differ only by the gateway, so
// their ratio is the cost of crossing clusters.
const (
	SysXDirect  = "causeway-mtls"
	SysXGateway = "causeway-gateway"
)

// IsCrossCluster reports whether name needs the two trust domains'
// Workload APIs (StartIdentities).
func IsCrossCluster(name string) bool { return name == SysXDirect || name == SysXGateway }

// Trust domains and identities of the cross-cluster systems.
var (
	westTD = spiffeid.RequireTrustDomainFromString("west.bench")
	eastTD = spiffeid.RequireTrustDomainFromString("east.bench")
	webID  = spiffeid.RequireFromPath(westTD, "/ns/bench/sa/web")
	upID   = spiffeid.RequireFromPath(eastTD, "/ns/bench/sa/upstream")
	gwID   = spiffeid.RequireFromPath(eastTD, "/ns/causeway-system/sa/causeway-gateway")
)

// Identities are the two clusters' Workload APIs: `causeway identity serve`
// processes, each with its own CA, each serving the other's bundle as
// federated (from a federation state file, as a linked control plane
// leaves it). Callers are attested by executable: the sidecar binary gets
// a workload identity, the gateway binary (a copy of the CLI under its own
// name, so the two stay apart even when sidecars run from the CLI too) the
// gateway's.
type Identities struct {
	West, East string // Workload API addresses (unix:///path)
	Gateway    string // the executable the gateway runs from
	children   []*Child
}

// Stop ends both Workload APIs by PID.
func (ids *Identities) Stop() {
	for i := len(ids.children) - 1; i >= 0; i-- {
		ids.children[i].Stop(5 * time.Second)
	}
}

// StartIdentities creates the two CAs under dir/identity, links them and
// starts both Workload APIs pinned to cores (the load side's: they are off
// the data path once the SVIDs are fetched, and their CPU is not counted
// as any system's). cli is the full causeway binary, sidecar the binary
// the sidecars run from.
func StartIdentities(ctx context.Context, dir, cores, cli, sidecar string) (*Identities, error) {
	base := filepath.Join(dir, "identity")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	resolve := func(p string) (string, error) {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		return filepath.EvalSymlinks(abs)
	}
	cli, err := resolve(cli)
	if err != nil {
		return nil, fmt.Errorf("causeway CLI: %w", err)
	}
	sidecar, err = resolve(sidecar)
	if err != nil {
		return nil, fmt.Errorf("sidecar binary: %w", err)
	}
	ids := &Identities{Gateway: filepath.Join(base, "causeway-gateway")}
	if err := copyFile(cli, ids.Gateway); err != nil {
		return nil, err
	}
	pem := map[spiffeid.TrustDomain]string{}
	for _, td := range []spiffeid.TrustDomain{westTD, eastTD} {
		caDir := filepath.Join(base, td.Name()+"-ca")
		flags := []string{"--ca-dir", caDir, "--trust-domain", td.Name()}
		if out, err := exec.CommandContext(ctx, cli, append([]string{"identity", "ca", "init"}, flags...)...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("identity ca init %s: %w: %s", td, err, firstLine(string(out)))
		}
		out, err := exec.CommandContext(ctx, cli, append([]string{"identity", "ca", "show", "-o", "pem"}, flags...)...).Output()
		if err != nil {
			return nil, fmt.Errorf("identity ca show %s: %w", td, err)
		}
		pem[td] = string(out)
	}
	serve := func(td, peer spiffeid.TrustDomain, entries ...string) (string, error) {
		// The file a linked control plane keeps (control
		// --federation-state): the peer cluster and its bundle.
		state := map[string]any{"links": []map[string]any{{
			"cluster":     strings.TrimSuffix(peer.Name(), ".bench"),
			"trustDomain": peer.Name(),
			"peerID":      spiffeid.RequireFromPath(peer, "/ns/causeway-system/sa/causeway-control").String(),
			"bundle":      pem[peer],
			"since":       time.Now().UTC(),
		}}}
		fed := filepath.Join(base, td.Name()+"-federation.json")
		data, _ := json.MarshalIndent(state, "", "  ")
		if err := writeFile(fed, data); err != nil {
			return "", err
		}
		sock := filepath.Join(base, td.Name()+".sock")
		argv := []string{cli, "identity", "serve", "--socket", sock, "--ca-dir", filepath.Join(base, td.Name()+"-ca"),
			"--trust-domain", td.Name(), "--federation-state", fed}
		for _, e := range entries {
			argv = append(argv, "--entry", e)
		}
		c, err := StartPinned(base, "identity-"+td.Name(), cores, argv...)
		if err != nil {
			return "", err
		}
		ids.children = append(ids.children, c)
		if err := waitFile(ctx, sock, 15*time.Second, c); err != nil {
			return "", err
		}
		return "unix://" + sock, nil
	}
	if ids.West, err = serve(westTD, eastTD, "exe:"+sidecar+"=bench/web"); err != nil {
		ids.Stop()
		return nil, err
	}
	if ids.East, err = serve(eastTD, westTD, "exe:"+sidecar+"=bench/upstream", "exe:"+ids.Gateway+"=causeway-system/causeway-gateway"); err != nil {
		ids.Stop()
		return nil, err
	}
	return ids, nil
}

// waitFile polls until path exists (a unix socket being bound).
func waitFile(ctx context.Context, path string, timeout time.Duration, c *Child) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if exited, err := c.Exited(); exited {
			return fmt.Errorf("%s exited (%v) before %s appeared; log %s:\n%s", c.Name, err, path, c.Log, c.Tail())
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not appear within %v", path, timeout)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", from, to, err)
	}
	return out.Close()
}

// eastInput is east's model: the three bench services, exported, served by
// one destination sidecar (identity upID) in front of the upstream, strict
// mode with a TrafficTarget admitting west's bench/web on HTTP (every path)
// and TCP, as adapters/smi would make of a cross-cluster TrafficTarget.
func eastInput(p Ports) spec.Input {
	h1, h2, tcp := benchPorts()
	h1.TargetPort, h2.TargetPort, tcp.TargetPort = int32(p.UpHTTP), int32(p.UpHTTP), int32(p.UpTCP)
	ep := []spec.Endpoint{{Addr: "127.0.0.1", Port: int32(p.Inbound), Ready: true, Identity: upID}}
	svc := func(k spec.Key, port spec.Port) spec.Service {
		return spec.Service{Key: k, Identities: []spiffeid.ID{upID}, Export: true, Ports: []spec.Port{port}, Endpoints: ep}
	}
	all := spec.Key{Namespace: "bench", Name: "all"}
	anyTCP := spec.Key{Namespace: "bench", Name: "any-tcp"}
	return spec.Input{TrustDomain: eastTD.Name(), Mode: spec.ModeStrict,
		Services: []spec.Service{svc(svcH1, h1), svc(svcH2, h2), svc(svcTCP, tcp)},
		Routes: []spec.Route{
			{Key: all, Kind: spec.RouteHTTP, Matches: []spec.Match{{Name: "all"}}},
			{Key: anyTCP, Kind: spec.RouteTCP},
		},
		Policies: []spec.AccessPolicy{{Key: spec.Key{Namespace: "bench", Name: "web-to-upstream"}, Destination: upID,
			Sources: []spiffeid.ID{webID},
			Rules: []spec.AccessRule{
				{Route: spec.RouteRef{Kind: spec.RouteHTTP, Key: all}},
				{Route: spec.RouteRef{Kind: spec.RouteTCP, Key: anyTCP}},
			}}},
	}
}

// westInput is west's model of the same services: endpoints are east's
// destination sidecar itself (direct) or east's gateway (an imported
// service, Remote naming it as east does).
func westInput(p Ports, viaGateway bool) spec.Input {
	h1, h2, tcp := benchPorts()
	svc := func(k spec.Key, port spec.Port) spec.Service {
		ep := spec.Endpoint{Addr: "127.0.0.1", Port: int32(p.Inbound), Ready: true, Identity: upID}
		if viaGateway {
			ep = spec.Endpoint{Addr: "127.0.0.1", Port: int32(p.Gateway), Ready: true, Gateway: gwID, Remote: k}
		}
		return spec.Service{Key: k, Identities: []spiffeid.ID{upID}, Ports: []spec.Port{port}, Endpoints: []spec.Endpoint{ep}}
	}
	return spec.Input{TrustDomain: westTD.Name(), Mode: spec.ModeStrict,
		Services: []spec.Service{svc(svcH1, h1), svc(svcH2, h2), svc(svcTCP, tcp)}}
}

func compile(in spec.Input, node spec.Node) (*spec.NodeConfig, error) {
	s, diags := spec.Build(in, spec.BuildOptions{})
	if diags.HasErrors() {
		return nil, fmt.Errorf("bench model %s: %w", in.TrustDomain, diags.Err())
	}
	return spec.Compile(s, node), nil
}

// crossClusterConfigs are the three generated files: west's client
// sidecar, east's destination sidecar and east's gateway (a NodeConfig for
// `causeway gateway --config`).
func crossClusterConfigs(p Ports, ids *Identities, viaGateway bool) (west, east, gw []byte, err error) {
	wcfg, err := compile(westInput(p, viaGateway), spec.Node{ID: "bench-west-web", Identity: webID})
	if err != nil {
		return nil, nil, nil, err
	}
	ein := eastInput(p)
	ecfg, err := compile(ein, spec.Node{ID: "bench-east-upstream", Identity: upID, Services: []spec.Key{svcH1, svcH2, svcTCP}})
	if err != nil {
		return nil, nil, nil, err
	}
	h1, h2, tcp := benchPorts()
	wb := causewayBootstrap{
		Admin:       fmt.Sprintf("127.0.0.1:%d", p.Admin),
		WorkloadAPI: ids.West,
		Outbound: &causewayOutbound{Ports: []causewayPort{
			{Service: svcH1.String(), Port: h1.Port, Listen: fmt.Sprintf("127.0.0.1:%d", p.H1)},
			{Service: svcH2.String(), Port: h2.Port, Listen: fmt.Sprintf("127.0.0.1:%d", p.H2)},
			{Service: svcTCP.String(), Port: tcp.Port, Listen: fmt.Sprintf("127.0.0.1:%d", p.TCP)},
		}},
		Policy: benchPolicy(p),
		Config: wcfg,
	}
	eb := causewayBootstrap{
		Admin:       fmt.Sprintf("127.0.0.1:%d", p.Admin2),
		WorkloadAPI: ids.East,
		Inbound:     &causewayInbound{Listen: fmt.Sprintf("127.0.0.1:%d", p.Inbound), AppHost: "127.0.0.1"},
		Policy:      benchPolicy(p),
		Config:      ecfg,
	}
	if west, err = json.MarshalIndent(wb, "", "  "); err != nil {
		return nil, nil, nil, err
	}
	if east, err = json.MarshalIndent(eb, "", "  "); err != nil {
		return nil, nil, nil, err
	}
	if viaGateway {
		gcfg, err := compile(ein, spec.Node{ID: "bench-east-gateway", Identity: gwID})
		if err != nil {
			return nil, nil, nil, err
		}
		if gw, err = json.MarshalIndent(gcfg, "", "  "); err != nil {
			return nil, nil, nil, err
		}
	}
	return west, east, gw, nil
}

// startCrossCluster starts SysXDirect or SysXGateway pinned to cores: east's
// destination sidecar, then (for SysXGateway) east's gateway, then west's
// client sidecar; every one of them counts as the system's CPU and memory.
// The generators talk to west's fixed ports, as with causeway-2hop.
func startCrossCluster(ctx context.Context, r *Running, sysDir, cores, sidecar string, ids *Identities, p Ports) error {
	if ids == nil {
		return fmt.Errorf("%s: no Workload APIs (StartIdentities)", r.Name)
	}
	via := r.Name == SysXGateway
	ports, err := loopback.FreePorts(2)
	if err != nil {
		return err
	}
	p.Gateway, p.GatewayAdmin = ports[0], ports[1]
	west, east, gw, err := crossClusterConfigs(p, ids, via)
	if err != nil {
		return err
	}
	start := func(name string, data []byte, argv func(cfg string) []string, ready func(*Child) error) error {
		cfg := filepath.Join(sysDir, name+".json")
		if err := writeFile(cfg, data); err != nil {
			return err
		}
		r.ConfigFiles = append(r.ConfigFiles, cfg)
		c, err := StartPinned(sysDir, name, cores, argv(cfg)...)
		if err != nil {
			return err
		}
		r.Children = append(r.Children, c)
		if ready == nil {
			return nil
		}
		return ready(c)
	}
	sidecarCmd := func(cfg string) []string { return sidecarArgv(sidecar, cfg) }
	if err := start("east-sidecar", east, sidecarCmd, func(c *Child) error {
		return WaitTCP(ctx, fmt.Sprintf("127.0.0.1:%d", p.Inbound), 30*time.Second, c)
	}); err != nil {
		return err
	}
	if via {
		gwCmd := func(cfg string) []string {
			return []string{ids.Gateway, "gateway", "--listen", fmt.Sprintf("127.0.0.1:%d", p.Gateway),
				"--admin", fmt.Sprintf("127.0.0.1:%d", p.GatewayAdmin), "--spiffe-socket", ids.East, "--config", cfg, "--node", "bench-east-gateway"}
		}
		if err := start("east-gateway", gw, gwCmd, func(c *Child) error {
			return WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/ready", p.GatewayAdmin), 30*time.Second, c)
		}); err != nil {
			return err
		}
		r.GatewayAdmin = fmt.Sprintf("127.0.0.1:%d", p.GatewayAdmin)
	}
	return start("west-sidecar", west, sidecarCmd, nil)
}
