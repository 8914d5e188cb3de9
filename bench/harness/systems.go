package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/causeway-mesh/causeway/internal/loopback"
)

// System names, in the order the report lists them.
const (
	SysNone         = "none"
	SysCauseway1    = "causeway-1hop"
	SysCauseway2    = "causeway-2hop"
	SysHAProxy      = "haproxy"
	SysNginx        = "nginx"
	nginxStreamPath = "/usr/lib/nginx/modules/ngx_stream_module.so"
)

// AllSystems is every system in report order.
var AllSystems = []string{SysNone, SysCauseway1, SysCauseway2, SysXDirect, SysXGateway, SysHAProxy, SysNginx}

// IsPeer reports whether name is one of the proxies Causeway is compared to.
func IsPeer(name string) bool { return name == SysHAProxy || name == SysNginx }

// IsCauseway reports whether name is one of Causeway's setups.
// sidecarArgs are the arguments that run a sidecar from cfg: the slim
// causeway-proxy binary takes the flags of `causeway proxy` directly.
func sidecarArgs(bin, cfg string) []string {
	if filepath.Base(bin) == "causeway-proxy" {
		return []string{"--config", cfg}
	}
	return []string{"proxy", "--config", cfg}
}

func IsCauseway(name string) bool {
	return name == SysCauseway1 || name == SysCauseway2 || IsCrossCluster(name)
}

// sidecarArgv runs a sidecar from cfg: the slim causeway-proxy binary (what
// `make bench` measures: the sidecar as shipped) takes the flags of
// `causeway proxy` directly; the full binary needs the subcommand.
func sidecarArgv(bin, cfg string) []string {
	if filepath.Base(bin) == "causeway-proxy" {
		return []string{bin, "--config", cfg}
	}
	return []string{bin, "proxy", "--config", cfg}
}

// Running is a started system: where to aim each load and which processes
// to measure.
type Running struct {
	Name         string
	H1, H2, TCP  string // host:port; TCP is "" when the system cannot proxy TCP
	TCPNA        string // why TCP is not measured, when TCP is ""
	Admin        string // Causeway's client-sidecar admin address
	GatewayAdmin string // the east-west gateway's admin address (causeway-gateway)
	Children     []*Child
	IdleRSS      int64 // bytes, summed over Children, a moment after start
	IdleAnon     int64 // the anonymous part of IdleRSS
	ConfigFiles  []string
}

// PIDs are the processes whose CPU and memory count as the system's.
func (r *Running) PIDs() []int {
	pids := make([]int, len(r.Children))
	for i, c := range r.Children {
		pids[i] = c.PID()
	}
	return pids
}

// Stop ends the system's processes by PID, last started first.
func (r *Running) Stop() {
	for i := len(r.Children) - 1; i >= 0; i-- {
		r.Children[i].Stop(5 * time.Second)
	}
}

// StartSystem generates name's config into dir, starts it pinned to cores
// and waits until it proxies an HTTP request and accepts TCP. The
// cross-cluster systems need StartSystemWith.
func StartSystem(ctx context.Context, name, dir, cores, causeway string, up Ports, conns int) (*Running, error) {
	return StartSystemWith(ctx, name, dir, cores, causeway, nil, up, conns)
}

// StartSystemWith is StartSystem with the two clusters' Workload APIs,
// which the cross-cluster systems (IsCrossCluster) take their SVIDs from.
func StartSystemWith(ctx context.Context, name, dir, cores, causeway string, ids *Identities, up Ports, conns int) (*Running, error) {
	r := &Running{Name: name}
	sysDir := filepath.Join(dir, name)
	if err := os.MkdirAll(sysDir, 0o755); err != nil {
		return nil, err
	}
	if name == SysNone {
		r.H1 = fmt.Sprintf("127.0.0.1:%d", up.UpHTTP)
		r.H2 = r.H1
		r.TCP = fmt.Sprintf("127.0.0.1:%d", up.UpTCP)
		return r, nil
	}
	ports, err := loopback.FreePorts(6)
	if err != nil {
		return nil, err
	}
	p := up
	p.H1, p.H2, p.TCP, p.Admin, p.Admin2, p.Inbound = ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	p.H1Conns, p.H2Conns = conns, conns
	r.H1 = fmt.Sprintf("127.0.0.1:%d", p.H1)
	r.H2 = fmt.Sprintf("127.0.0.1:%d", p.H2)
	r.TCP = fmt.Sprintf("127.0.0.1:%d", p.TCP)

	switch name {
	case SysHAProxy:
		cfg := filepath.Join(sysDir, "haproxy.cfg")
		if err := writeFile(cfg, []byte(HAProxyConfig(p))); err != nil {
			return nil, err
		}
		r.ConfigFiles = []string{cfg}
		bin, err := exec.LookPath("haproxy")
		if err != nil {
			return nil, fmt.Errorf("haproxy: %w (run bench/install.sh)", err)
		}
		// -db: foreground, no master process: one PID does all the work.
		c, err := StartPinned(sysDir, "haproxy", cores, bin, "-db", "-f", cfg)
		if err != nil {
			return nil, err
		}
		r.Children = []*Child{c}
	case SysNginx:
		if _, err := os.Stat(nginxStreamPath); err == nil {
			p.NginxStreamModule = nginxStreamPath
		} else {
			r.TCP, r.TCPNA = "", "no stream module ("+nginxStreamPath+")"
		}
		cfg := filepath.Join(sysDir, "nginx.conf")
		if err := writeFile(cfg, []byte(NginxConfig(p, sysDir))); err != nil {
			return nil, err
		}
		r.ConfigFiles = []string{cfg}
		bin, err := exec.LookPath("nginx")
		if err != nil {
			if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
				return nil, fmt.Errorf("nginx: %w (run bench/install.sh)", err)
			}
			bin = "/usr/sbin/nginx"
		}
		c, err := StartPinned(sysDir, "nginx", cores, bin, "-p", sysDir, "-e", filepath.Join(sysDir, "nginx-error.log"), "-c", cfg)
		if err != nil {
			return nil, err
		}
		r.Children = []*Child{c}
	case SysCauseway1, SysCauseway2:
		two := name == SysCauseway2
		r.Admin = fmt.Sprintf("127.0.0.1:%d", p.Admin)
		if two {
			// The server sidecar first, so the client's first request finds it.
			data, err := CausewayServerConfig(p)
			if err != nil {
				return nil, err
			}
			cfg := filepath.Join(sysDir, "server-sidecar.json")
			if err := writeFile(cfg, data); err != nil {
				return nil, err
			}
			r.ConfigFiles = append(r.ConfigFiles, cfg)
			c, err := StartPinned(sysDir, "causeway-server", cores, sidecarArgv(causeway, cfg)...)
			if err != nil {
				return nil, err
			}
			r.Children = append(r.Children, c)
			if err := WaitTCP(ctx, fmt.Sprintf("127.0.0.1:%d", p.Inbound), 15*time.Second, c); err != nil {
				r.Stop()
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
		data, err := CausewayClientConfig(p, two)
		if err != nil {
			return nil, err
		}
		cfg := filepath.Join(sysDir, "client-sidecar.json")
		if err := writeFile(cfg, data); err != nil {
			return nil, err
		}
		r.ConfigFiles = append(r.ConfigFiles, cfg)
		c, err := StartPinned(sysDir, "causeway-client", cores, sidecarArgv(causeway, cfg)...)
		if err != nil {
			r.Stop()
			return nil, err
		}
		r.Children = append(r.Children, c)
	case SysXDirect, SysXGateway:
		r.Admin = fmt.Sprintf("127.0.0.1:%d", p.Admin)
		if err := startCrossCluster(ctx, r, sysDir, cores, causeway, ids, p); err != nil {
			r.Stop()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	default:
		return nil, fmt.Errorf("unknown system %q (want one of %v)", name, AllSystems)
	}

	wait := func() error {
		if err := WaitHTTP(ctx, "http://"+r.H1+"/", 15*time.Second, r.Children...); err != nil {
			return err
		}
		if err := WaitTCP(ctx, r.H2, 15*time.Second, r.Children...); err != nil {
			return err
		}
		if r.TCP != "" {
			return WaitTCP(ctx, r.TCP, 15*time.Second, r.Children...)
		}
		return nil
	}
	if err := wait(); err != nil {
		r.Stop()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// Idle memory: after start-up work and one proxied request, before load.
	time.Sleep(time.Second)
	u, err := Sample(r.PIDs())
	if err != nil {
		r.Stop()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	r.IdleRSS, r.IdleAnon = u.RSS, u.Anon
	return r, nil
}
