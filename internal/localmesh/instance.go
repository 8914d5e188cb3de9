package localmesh

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/causeway-mesh/causeway/adapters/local"
	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/spec"
)

// instance is one running Workload: its sidecar and its command.
type instance struct {
	w       local.Workload
	node    string // node ID: name.namespace
	inbound int32
	admin   int32
	dir     string // per-workload files: bootstrap, sidecar log

	sidecar  *child
	app      *child
	stopping bool // set before a deliberate stop; exits are then not news
	broken   bool // the sidecar never got ready; the command was not started
	mu       sync.Mutex
}

func (i *instance) isBroken() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.broken
}

func (i *instance) isStopping() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.stopping
}

func (i *instance) adminAddr() string   { return "127.0.0.1:" + strconv.Itoa(int(i.admin)) }
func (i *instance) inboundAddr() string { return "127.0.0.1:" + strconv.Itoa(int(i.inbound)) }

// sameWorkload reports whether two reads of a Workload would run the same
// processes (where it was written does not matter).
func sameWorkload(a, b local.Workload) bool {
	a.Origin, b.Origin = spec.Origin{}, spec.Origin{}
	return reflect.DeepEqual(a, b)
}

// reconcile makes the running instances match the Workloads: removed or
// changed ones are stopped, new (or changed) ones started — every new
// sidecar first, and each command only once its sidecar has a config, so a
// client's first call already goes through the mesh.
func (c *cluster) reconcile(res local.Result) {
	want := map[spec.Key]local.Workload{}
	for _, w := range res.Workloads {
		want[w.Key] = w
	}
	var stop []*instance
	for k, inst := range c.instances {
		if w, ok := want[k]; !ok || !sameWorkload(inst.w, w) {
			stop = append(stop, inst)
			delete(c.instances, k)
			what := "removed"
			if ok {
				what = "changed"
			}
			c.printf("%s workload %s %s: stopping it", time.Now().Format("15:04:05"), k, what)
		}
	}
	c.stopInstances(stop)

	var started []*instance
	for _, w := range res.Workloads {
		if _, ok := c.instances[w.Key]; ok {
			continue
		}
		inst, err := c.startSidecar(w)
		if err != nil {
			c.printf("workload %s: %v", w.Key, err)
			continue
		}
		c.instances[w.Key] = inst
		started = append(started, inst)
	}
	var wg sync.WaitGroup
	for _, inst := range started {
		wg.Go(func() {
			if err := waitReady(c.m.ctx, inst.adminAddr(), inst.sidecar, 15*time.Second); err != nil {
				c.printf("workload %s: sidecar not ready: %v; not started (tried again on the next change of the folder)", inst.w.Key, err)
				inst.mu.Lock()
				inst.broken = true
				inst.mu.Unlock()
			}
		})
	}
	wg.Wait()
	// A workload whose sidecar could not start is forgotten, so the next
	// change of the folder tries it again (a port freed, a file fixed).
	var broken []*instance
	started = slices.DeleteFunc(started, func(inst *instance) bool {
		if inst.isBroken() {
			broken = append(broken, inst)
			delete(c.instances, inst.w.Key)
			return true
		}
		return false
	})
	c.stopInstances(broken)
	// Servers first, and callers only once the servers listen, so the
	// callers' first requests already find someone to answer.
	slices.SortStableFunc(started, func(a, b *instance) int { return cmp.Compare(serverRank(a), serverRank(b)) })
	for i, inst := range started {
		if i > 0 && serverRank(inst) != serverRank(started[i-1]) {
			c.waitListening(started[:i])
		}
		if err := c.startApp(inst); err != nil {
			c.printf("workload %s: %v", inst.w.Key, err)
		}
	}
	c.waitListening(started)
	for _, inst := range started {
		if c.started {
			c.printf("%s workload %s started: sidecar pid %d inbound %s admin %s%s", time.Now().Format("15:04:05"),
				inst.w.Key, inst.sidecar.pid(), inst.inboundAddr(), inst.adminAddr(), appPID(inst))
		}
	}
}

// serverRank orders workloads that serve a port before those that only call.
func serverRank(inst *instance) int {
	if inst.w.Port != 0 {
		return 0
	}
	return 1
}

// waitListening waits (up to 10s each, in parallel) until the commands of
// insts that serve a port accept connections on it.
func (c *cluster) waitListening(insts []*instance) {
	var wg sync.WaitGroup
	for _, inst := range insts {
		if inst.app == nil || inst.w.Port == 0 {
			continue
		}
		wg.Go(func() {
			addr := "127.0.0.1:" + strconv.Itoa(int(inst.w.Port))
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) && !inst.app.exited() && c.m.ctx.Err() == nil {
				if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					c.Close()
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			c.printf("workload %s: nothing listens on %s yet", inst.w.Key, addr)
		})
	}
	wg.Wait()
}

func appPID(inst *instance) string {
	if inst.app == nil {
		return ""
	}
	return fmt.Sprintf(", app pid %d", inst.app.pid())
}

// stopInstances stops every command first, then every sidecar, each group
// in parallel: a command never loses its sidecar while it still runs.
func (c *cluster) stopInstances(insts []*instance) {
	for _, inst := range insts {
		inst.mu.Lock()
		inst.stopping = true
		inst.mu.Unlock()
	}
	for _, pick := range []func(*instance) *child{
		func(i *instance) *child { return i.app },
		func(i *instance) *child { return i.sidecar },
	} {
		var wg sync.WaitGroup
		for _, inst := range insts {
			if ch := pick(inst); ch != nil {
				wg.Go(func() { ch.stop(c.m.opts.Grace) })
			}
		}
		wg.Wait()
	}
}

// startSidecar writes the workload's bootstrap and starts `causeway up
// sidecar` with it, registering the child's PID with the attestor before
// the child can ask the Workload API for its SVID.
func (c *cluster) startSidecar(w local.Workload) (*instance, error) {
	inst := &instance{w: w, node: w.Key.Name + "." + w.Key.Namespace}
	var err error
	if inst.inbound, err = c.m.ports.inboundPort(spec.Key{Cluster: c.name, Namespace: w.Key.Namespace, Name: w.Key.Name}); err != nil {
		return nil, err
	}
	if inst.admin, err = c.m.ports.free(); err != nil {
		return nil, err
	}
	inst.dir = filepath.Join(c.runDir, w.Key.Namespace+"."+w.Key.Name)
	if err := os.MkdirAll(inst.dir, 0o700); err != nil {
		return nil, err
	}
	boot := proxy.Bootstrap{
		Admin:   inst.adminAddr(),
		Inbound: proxy.InboundConfig{Listen: inst.inboundAddr(), AppHost: "127.0.0.1"},
		// A local mesh restarts a workload on the same address within a
		// second or two (an edit, a crash): eject for 2 s (up to 20 s when
		// it keeps failing) rather than a cluster's 30 s, so traffic comes
		// back soon after the workload does.
		Policy: proxy.Policy{Outlier: proxy.OutlierPolicy{
			BaseEjectionTime: proxy.Duration(2 * time.Second), MaxEjectionTime: proxy.Duration(20 * time.Second)}},
	}
	if p := w.Outbound.HTTPProxyPort; p != 0 {
		boot.Outbound.HTTPProxy = "127.0.0.1:" + strconv.Itoa(int(p))
	}
	for _, u := range w.Outbound.Upstreams {
		boot.Outbound.Ports = append(boot.Outbound.Ports, proxy.FixedPort{Service: u.Service.String(), Port: u.Port,
			Listen: "127.0.0.1:" + strconv.Itoa(int(u.LocalPort))})
	}
	data, err := json.MarshalIndent(boot, "", "  ")
	if err != nil {
		return nil, err
	}
	bootFile := filepath.Join(inst.dir, "bootstrap.json")
	if err := os.WriteFile(bootFile, data, 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(inst.dir, "sidecar.log"))
	if err != nil {
		return nil, err
	}
	argv := []string{c.m.opts.Binary, "proxy", "--config", bootFile, "--control", c.grpcAddr,
		"--control-id", c.ctlID.String(), "--spiffe-socket", "unix://" + c.sock, "--node", inst.node}
	if k := w.ServiceKey(); k != (spec.Key{}) {
		argv = append(argv, "--service", k.String())
	}
	inst.sidecar, err = startChild(inst.node+" sidecar", argv, os.Environ(), c.absDir, logFile, func(ch *child) {
		logFile.Close()
		c.attestor.remove(ch.pid())
		if !inst.isStopping() {
			c.printf("%s sidecar of %s exited: %v; its last words:\n%s", time.Now().Format("15:04:05"), w.Key, ch.err, tail(logFile.Name(), 3))
		}
	})
	if err != nil {
		logFile.Close()
		return nil, err
	}
	c.attestor.add(inst.sidecar.pid(), w.Identity)
	return inst, nil
}

// waitReady polls a child's admin /ready (a sidecar's or a gateway's)
// until it has a config in force.
func waitReady(ctx context.Context, admin string, ch *child, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	url := "http://" + admin + "/ready"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if ch.exited() {
			return fmt.Errorf("exited: %v", ch.err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no config after %s: %w", timeout, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// env is what a workload's command is told, on top of this process's own
// environment: its sidecar as HTTP proxy, its port, and one variable per
// fixed upstream port, UPSTREAM_<NAME>_<NAMESPACE>_<PORT>=127.0.0.1:<localPort>.
func (inst *instance) env() map[string]string {
	w := inst.w
	env := map[string]string{
		"CAUSEWAY_WORKLOAD": w.Key.String(),
		"NO_PROXY":          "", "no_proxy": "",
	}
	if w.Port != 0 {
		env["PORT"] = strconv.Itoa(int(w.Port))
	}
	if p := w.Outbound.HTTPProxyPort; p != 0 {
		u := "http://127.0.0.1:" + strconv.Itoa(int(p))
		env["HTTP_PROXY"], env["http_proxy"] = u, u
	}
	for _, u := range w.Outbound.Upstreams {
		name := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(fmt.Sprintf("UPSTREAM_%s_%s_%d", u.Service.Name, u.Service.Namespace, u.Port)))
		env[name] = "127.0.0.1:" + strconv.Itoa(int(u.LocalPort))
	}
	// The Workload's own variables come last and win: they may use the
	// ones above ($(PORT)) and each other, in order.
	for _, e := range w.Env {
		env[e.Name] = expand(e.Value, env)
	}
	return env
}

// expand replaces $(VAR) with the variable's value, as Kubernetes does in a
// container's command; $$ is a literal $, and an unknown $(VAR) is kept.
func expand(s string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteByte(s[i])
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// startApp runs the workload's command with HTTP_PROXY pointing at its
// sidecar; a program named "causeway" is this binary.
func (c *cluster) startApp(inst *instance) error {
	if len(inst.w.Command) == 0 {
		return nil
	}
	env := inst.env()
	argv := make([]string, len(inst.w.Command))
	for i, a := range inst.w.Command {
		argv[i] = expand(a, env)
	}
	if argv[0] == "causeway" {
		argv[0] = c.m.opts.Binary
	}
	environ := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		_, ours := env[k]
		return ours
	})
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	slices.Sort(environ)
	out := &prefixWriter{mu: &c.m.outMu, out: c.m.opts.Out, prefix: "[" + c.appLabel(inst.w.Key.Name) + "] "}
	var err error
	inst.app, err = startChild(inst.w.Key.String(), argv, environ, c.absDir, out, func(ch *child) {
		if !inst.isStopping() {
			c.printf("%s workload %s exited: %v", time.Now().Format("15:04:05"), inst.w.Key, ch.err)
		}
	})
	return err
}

// tail returns the last n lines of a file, indented, for a message about a
// child that died: the run directory holding its log goes away at exit.
func tail(file string, n int) string {
	data, err := os.ReadFile(file)
	if err != nil {
		return "    (" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	lines = lines[max(0, len(lines)-n):]
	return "    " + strings.Join(lines, "\n    ")
}
