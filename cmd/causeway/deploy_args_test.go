package main

import (
	"net"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/causeway-mesh/causeway/internal/kubetest"
)

// workload is one container of a rendered Deployment or DaemonSet, its args
// expanded as the kubelet would and parsed by the real command.
type workload struct {
	namespace string
	pod       corev1.PodSpec
	container corev1.Container
	cmd       *cobra.Command
}

func (w workload) flag(t *testing.T, name string) string {
	t.Helper()
	f := w.cmd.Flags().Lookup(name)
	if f == nil {
		t.Fatalf("%s has no --%s", w.cmd.CommandPath(), name)
	}
	if sv, ok := f.Value.(interface{ GetSlice() []string }); ok {
		return strings.Join(sv.GetSlice(), ",")
	}
	return f.Value.String()
}

// mountOf is the container path where the pod's volume matching pick is
// mounted, and that volume.
func (w workload) mountOf(t *testing.T, pick func(corev1.Volume) bool) (string, corev1.Volume) {
	t.Helper()
	for _, v := range w.pod.Volumes {
		if !pick(v) {
			continue
		}
		for _, m := range w.container.VolumeMounts {
			if m.Name == v.Name {
				return m.MountPath, v
			}
		}
		t.Fatalf("%s: volume %s is not mounted", w.container.Name, v.Name)
	}
	t.Fatalf("%s: no such volume", w.container.Name)
	return "", corev1.Volume{}
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// renderWorkloads builds deploy/<dir> with kustomize's library and returns
// every container by "<namespace>/<object>", its $(VAR) references replaced
// from its env (values, the pod's fields, ConfigMap keys of the same
// rendering) and its args parsed by the command they name.
func renderWorkloads(t *testing.T, dir string) map[string]workload {
	t.Helper()
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), path.Join("../../deploy", dir))
	if err != nil {
		t.Fatalf("kustomize build deploy/%s: %v", dir, err)
	}
	y, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := kubetest.Parse("deploy/"+dir, y)
	if err != nil {
		t.Fatal(err)
	}
	configMaps := map[string]map[string]string{}
	for _, d := range docs {
		if d.Obj.GetKind() == "ConfigMap" {
			var cm corev1.ConfigMap
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(d.Obj.Object, &cm); err != nil {
				t.Fatal(err)
			}
			configMaps[cm.Namespace+"/"+cm.Name] = cm.Data
		}
	}
	out := map[string]workload{}
	for _, d := range docs {
		var pod corev1.PodSpec
		switch d.Obj.GetKind() {
		case "Deployment":
			var o appsv1.Deployment
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(d.Obj.Object, &o); err != nil {
				t.Fatal(err)
			}
			pod = o.Spec.Template.Spec
		case "DaemonSet":
			var o appsv1.DaemonSet
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(d.Obj.Object, &o); err != nil {
				t.Fatal(err)
			}
			pod = o.Spec.Template.Spec
		default:
			continue
		}
		ns := d.Obj.GetNamespace()
		for _, c := range pod.Containers {
			where := "deploy/" + dir + ": " + ns + "/" + d.Obj.GetName() + " container " + c.Name
			env := map[string]string{}
			for _, e := range c.Env {
				switch {
				case e.ValueFrom == nil:
					env[e.Name] = e.Value
				case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
					env[e.Name] = ns
				case e.ValueFrom.FieldRef != nil:
					env[e.Name] = "pod-0"
				case e.ValueFrom.ConfigMapKeyRef != nil:
					v, ok := configMaps[ns+"/"+e.ValueFrom.ConfigMapKeyRef.Name][e.ValueFrom.ConfigMapKeyRef.Key]
					if !ok {
						t.Fatalf("%s: env %s: no ConfigMap key %s in %s", where, e.Name, e.ValueFrom.ConfigMapKeyRef.Key, e.ValueFrom.ConfigMapKeyRef.Name)
					}
					env[e.Name] = v
				}
			}
			args := make([]string, len(c.Args))
			for i, a := range c.Args {
				args[i] = envRef.ReplaceAllStringFunc(a, func(m string) string {
					v, ok := env[m[2:len(m)-1]]
					if !ok {
						t.Errorf("%s: arg %q: %s is not in the container's env (the kubelet would leave it as is)", where, a, m)
					}
					return v
				})
			}
			cmd, rest, err := newRootCmd().Find(args)
			if err != nil {
				t.Fatalf("%s: args %q: %v", where, args, err)
			}
			// Find leaves the flags; the command path words come first.
			depth := len(strings.Fields(cmd.CommandPath())) - 1
			if err := cmd.ParseFlags(args[depth:]); err != nil {
				t.Fatalf("%s: args %q: %v", where, args, err)
			}
			if len(cmd.Flags().Args()) != 0 {
				t.Errorf("%s: stray arguments %q (from %q)", where, cmd.Flags().Args(), rest)
			}
			out[ns+"/"+d.Obj.GetName()] = workload{namespace: ns, pod: pod, container: c, cmd: cmd}
		}
	}
	return out
}

func hostPathVol(p string) func(corev1.Volume) bool {
	return func(v corev1.Volume) bool { return v.HostPath != nil && v.HostPath.Path == p }
}

func csiVol(v corev1.Volume) bool { return v.CSI != nil }

// TestDeployBaseIsOneIdentityStory: in deploy/base, what each piece serves
// and what the others expect of it agree, with the real commands' flags:
// the node agent's socket is the one the injector and the gateway mount;
// the token audience the injector and the gateway use is one the node
// agent accepts; the control plane's ID (from its own CA) is what proxies
// and the gateway check; node agent and control plane share trust domain,
// CA Secret and federation Secret; federation is on, with the gateway's ID
// and Service ports matching.
//
// examples/cluster-east is base with its own trust domain and cluster
// values, put in by kustomize replacements: the same must hold there.
func TestDeployBaseIsOneIdentityStory(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ dir, td, cluster, gateway string }{
		{"base", "cluster.local", "cluster1", ""},
		{"examples/cluster-east", "east.causeway.local", "east", "192.0.2.11:15443"},
	} {
		t.Run(tt.dir, func(t *testing.T) {
			t.Parallel()
			baseIdentityStory(t, tt.dir, tt.td, tt.cluster, tt.gateway)
		})
	}
}

func baseIdentityStory(t *testing.T, dir, wantTD, wantCluster, wantGateway string) {
	w := renderWorkloads(t, dir)
	cp, agent, gw := w["causeway-system/causeway-control-plane"], w["causeway-node/causeway-node-agent"], w["causeway-gateway/causeway-gateway"]
	if cp.cmd == nil || agent.cmd == nil || gw.cmd == nil {
		t.Fatalf("rendered workloads %v; want control plane, node agent and gateway", mapsKeys(w))
	}
	td := cp.flag(t, "trust-domain")
	socket := agent.flag(t, "socket")
	agentDir, _ := agent.mountOf(t, func(v corev1.Volume) bool { return v.HostPath != nil })
	_, agentVol := agent.mountOf(t, func(v corev1.Volume) bool { return v.HostPath != nil })
	gwDir, _ := gw.mountOf(t, hostPathVol(cp.flag(t, "spiffe-host-path")))
	tokenDir, tokenVol := gw.mountOf(t, func(v corev1.Volume) bool { return v.Projected != nil })
	gwNS, gwSA := gw.namespace, gw.pod.ServiceAccountName
	checks := []struct{ name, got, want string }{
		{"trust domain", td, wantTD},
		{"cluster", cp.flag(t, "cluster"), wantCluster},
		{"gateway address", cp.flag(t, "gateway-addr"), wantGateway},
		{"node agent trust domain", agent.flag(t, "trust-domain"), td},
		{"node agent attestation", agent.flag(t, "attest"), attestTokenReview},
		{"node agent socket in its host directory", path.Dir(socket), agentDir},
		{"injector's host path is the node agent's", cp.flag(t, "spiffe-host-path"), agentVol.HostPath.Path},
		{"injector's socket name", cp.flag(t, "spiffe-socket-name"), path.Base(socket)},
		{"node agent accepts the injector's token audience", agent.flag(t, "token-audience"), cp.flag(t, "spiffe-token-audience")},
		{"gateway socket", gw.flag(t, "spiffe-socket"), "unix://" + gwDir + "/" + path.Base(socket)},
		{"gateway token file in its projected token", path.Dir(gw.flag(t, "spiffe-token-file")), tokenDir},
		{"gateway token audience", tokenVol.Projected.Sources[0].ServiceAccountToken.Audience, cp.flag(t, "spiffe-token-audience")},
		{"proxies check the control plane's own ID", cp.flag(t, "proxy-control-id"), "spiffe://" + td + "/ns/causeway/sa/control"},
		{"gateway checks the control plane's own ID", gw.flag(t, "control-id"), "spiffe://" + td + "/ns/causeway/sa/control"},
		{"control plane runs the local CA", cp.flag(t, "spiffe-socket"), ""},
		{"CA Secret", agent.flag(t, "ca-secret"), cp.flag(t, "ca-secret")},
		{"node agent never rotates", agent.flag(t, "ca-lease"), ""},
		{"federation Secret", agent.flag(t, "federation-secret"), cp.flag(t, "federation-secret")},
		{"gateway ID", cp.flag(t, "gateway-id"), "spiffe://" + td + "/ns/" + gwNS + "/sa/" + gwSA},
		{"gateway Service followed", cp.flag(t, "gateway-service"), gwNS + "/causeway-gateway"},
		{"federation Service followed", cp.flag(t, "federation-service"), cp.namespace + "/causeway-federation"},
		{"federation on", portOf(t, cp.flag(t, "federation-listen")), containerPort(cp.container, "grpc-federation")},
		{"gateway listens on its Service's port", portOf(t, gw.flag(t, "listen")), containerPort(gw.container, "tls-eastwest")},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("%q, want %q", c.got, c.want)
			}
		})
	}
	if errs := validation.IsDNS1123Label(cp.flag(t, "cluster")); len(errs) > 0 {
		t.Errorf("--cluster %q: %v", cp.flag(t, "cluster"), errs)
	}
	// base's empty addresses must mean none, not one empty address that
	// federation.New would refuse at start.
	for _, name := range []string{"gateway-addr", "federation-advertise"} {
		if got, err := cp.cmd.Flags().GetStringSlice(name); err != nil || (wantGateway == "" && len(got) != 0) {
			t.Errorf("--%s = %q (%v), want none", name, got, err)
		}
	}
}

// TestDeploySpireIsOneIdentityStory: in deploy/spire every SVID comes from
// SPIRE's agent through the CSI driver, with no local CA and no federation,
// and proxies and the gateway check the ID SPIRE gives the control plane's
// ServiceAccount.
func TestDeploySpireIsOneIdentityStory(t *testing.T) {
	t.Parallel()
	w := renderWorkloads(t, "spire")
	cp, gw := w["causeway-system/causeway-control-plane"], w["causeway-gateway/causeway-gateway"]
	if cp.cmd == nil || gw.cmd == nil || len(w) != 2 {
		t.Fatalf("rendered workloads %v; want the control plane and the gateway only", mapsKeys(w))
	}
	td := cp.flag(t, "trust-domain")
	cpDir, _ := cp.mountOf(t, csiVol)
	gwDir, _ := gw.mountOf(t, csiVol)
	spireID := "spiffe://" + td + "/ns/" + cp.namespace + "/sa/" + cp.pod.ServiceAccountName
	checks := []struct{ name, got, want string }{
		{"control plane SVID from SPIRE", cp.flag(t, "spiffe-socket"), "unix://" + cpDir + "/spire-agent.sock"},
		{"gateway SVID from SPIRE", gw.flag(t, "spiffe-socket"), "unix://" + gwDir + "/spire-agent.sock"},
		{"gateway sends no token", gw.flag(t, "spiffe-token-file"), ""},
		{"injector: CSI, not a host path", cp.flag(t, "spiffe-host-path"), ""},
		{"injector: no token", cp.flag(t, "spiffe-token-audience"), ""},
		{"proxies check SPIRE's control plane ID", cp.flag(t, "proxy-control-id"), spireID},
		{"gateway checks SPIRE's control plane ID", gw.flag(t, "control-id"), spireID},
		{"no federation (it needs the local CA)", cp.flag(t, "federation-listen"), ""},
		{"no CA Secret", cp.flag(t, "ca-secret"), ""},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("%q, want %q", c.got, c.want)
			}
		})
	}
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("address %q: %v", addr, err)
	}
	return p
}

func containerPort(c corev1.Container, name string) string {
	for _, p := range c.Ports {
		if p.Name == name {
			return strconv.Itoa(int(p.ContainerPort))
		}
	}
	return "no port " + name
}

// TestGatewayTokenFileUsage: the gateway sends its token over a unix
// socket only, and says which file it cannot read.
func TestGatewayTokenFileUsage(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"token over TCP", []string{"gateway", "--listen", "127.0.0.1:0", "--control", "127.0.0.1:1", "--control-id", "spiffe://cluster.local/ns/causeway/sa/control", "--spiffe-socket", "tcp://127.0.0.1:1", "--spiffe-token-file", "t"}, 2, "not a unix socket"},
		{"missing token file", []string{"gateway", "--listen", "127.0.0.1:0", "--control", "127.0.0.1:1", "--control-id", "spiffe://cluster.local/ns/causeway/sa/control", "--spiffe-socket", "unix:///nonexistent.sock", "--spiffe-token-file", "/nonexistent/token"}, 1, "/nonexistent/token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errs, tc.code, tc.stderr)
			}
		})
	}
}
