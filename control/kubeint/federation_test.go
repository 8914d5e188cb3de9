package kubeint_test

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/causeway-mesh/causeway/federation"
	"github.com/causeway-mesh/causeway/identity/ca"
	"github.com/causeway-mesh/causeway/internal/kubetest"
	"github.com/causeway-mesh/causeway/internal/loopback"
	"github.com/causeway-mesh/causeway/spec"
)

// controlPlaneSA is who each `causeway control` runs as: deploy/base's
// ServiceAccount, impersonated through its kubeconfig, so deploy/base's RBAC
// alone decides what the control plane may read and write.
const controlPlaneSA = "system:serviceaccount:causeway-system:causeway-control-plane"

var serviceExports = schema.GroupVersionResource{Group: "multicluster.x-k8s.io", Version: "v1alpha1", Resource: "serviceexports"}

// plane is one cluster: its own apiserver and one `causeway control --kube`
// with its CA in a Secret and federation on.
type plane struct {
	cluster string
	td      string
	admin   *rest.Config
	kc      kubernetes.Interface
	dyn     dynamic.Interface
	gateway string // address of gwLis, sent to peers
	gwLis   net.Listener
	// gwService, when set, is followed with --gateway-service instead of
	// passing gateway with --gateway-addr.
	gwService string
	// fedListen is --federation-listen (default 127.0.0.1:0); fedService,
	// when set, is followed with --federation-service.
	fedListen, fedService string
	restURL               string
	log                   string
}

// prepare installs deploy/crds and deploy/base's namespace, RBAC and
// ServiceAccount, and writes a kubeconfig that impersonates the control
// plane's ServiceAccount.
func prepare(t *testing.T, ctx context.Context, cluster string, cfg *rest.Config, dir string) (*plane, string) {
	t.Helper()
	crds, err := filepath.Glob("../../deploy/crds/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range crds {
		if filepath.Base(f) != "kustomization.yaml" {
			files = append(files, f)
		}
	}
	if err := kubetest.InstallCRDs(ctx, cfg, files...); err != nil {
		t.Fatal(err)
	}
	docs, err := kubetest.ReadFiles("../../deploy/base/namespace.yaml", "../../deploy/base/rbac.yaml", "../../deploy/base/control-plane.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := kubetest.NewApplier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if _, err := a.Apply(ctx, d.Obj, false); err != nil {
			t.Fatalf("%s: %s: %v", cluster, d, err)
		}
	}
	// causeway control starts as the ServiceAccount soon after, and exits if
	// its first reads are refused.
	kubetest.RBACSettled(ctx, t, kubernetes.NewForConfigOrDie(cfg), controlPlaneSA,
		[]string{"system:serviceaccounts", "system:serviceaccounts:causeway-system", "system:authenticated"},
		[]authorizationv1.ResourceAttributes{
			{Verb: "create", Resource: "secrets", Namespace: "causeway-system"},
			{Verb: "get", Resource: "secrets", Namespace: "causeway-system", Name: "causeway-ca"},
			{Verb: "update", Resource: "secrets", Namespace: "causeway-system", Name: "causeway-ca"},
			{Verb: "get", Resource: "secrets", Namespace: "causeway-system", Name: "causeway-federation"},
			{Verb: "update", Resource: "secrets", Namespace: "causeway-system", Name: "causeway-federation"},
			{Verb: "list", Resource: "services"},
			{Verb: "list", Group: "discovery.k8s.io", Resource: "endpointslices"},
			{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: "causeway-system", Name: "causeway-control-plane"},
		})
	kubeconfig := filepath.Join(dir, cluster+".kubeconfig")
	kc := clientcmdapi.NewConfig()
	kc.Clusters[cluster] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData, CertificateAuthority: cfg.CAFile}
	kc.AuthInfos["control-plane"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken, Impersonate: controlPlaneSA,
		ImpersonateGroups: []string{"system:serviceaccounts", "system:serviceaccounts:causeway-system", "system:authenticated"}}
	kc.Contexts[cluster] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: "control-plane"}
	kc.CurrentContext = cluster
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}
	gw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	return &plane{cluster: cluster, td: cluster + ".causeway.local", admin: cfg,
		kc: kubernetes.NewForConfigOrDie(cfg), dyn: dynamic.NewForConfigOrDie(cfg),
		gateway: gw.Addr().String(), gwLis: gw, log: filepath.Join(dir, cluster+"-control.log")}, kubeconfig
}

var restStarted = regexp.MustCompile(`msg="REST API started" addr=(\S+)`)

// start runs `causeway control --kube` for the plane, every address bound
// to port 0; the REST address is read back from the log.
func (p *plane) start(t *testing.T, bin, kubeconfig string) {
	t.Helper()
	gw := []string{"--gateway-addr", p.gateway}
	if p.gwService != "" {
		gw = []string{"--gateway-service", p.gwService}
	}
	if p.fedService != "" {
		gw = append(gw, "--federation-service", p.fedService)
	}
	cmd := exec.Command(bin, append([]string{"control", "--kubeconfig", kubeconfig, "--trust-domain", p.td,
		"--ca-secret", "causeway-system/causeway-ca", "--listen", "127.0.0.1:0", "--rest", "127.0.0.1:0",
		"--cluster", p.cluster, "--federation-listen", cmp.Or(p.fedListen, "127.0.0.1:0"), "--federation-secret", "causeway-system/causeway-federation",
		"--federation-heartbeat", "1s", "--gateway-probe-interval", "1s", "--debounce", "50ms"}, gw...)...)
	cmd.Env = append(os.Environ(), "POD_NAMESPACE=causeway-system", "POD_NAME="+p.cluster+"-control-0")
	logFile, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	var copied sync.WaitGroup
	copied.Go(func() {
		defer logFile.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(logFile, sc.Text())
			if m := restStarted.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	})
	exited := make(chan error, 1)
	go func() { copied.Wait(); exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // only the process this test started
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("%s: causeway control exited with %v", p.cluster, err)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("%s: causeway control did not stop within 15s of SIGTERM", p.cluster)
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("%s control log:\n%s", p.cluster, b)
		}
	})
	select {
	case a := <-addr:
		p.restURL = "http://" + a
	case err := <-exited:
		b, _ := os.ReadFile(p.log)
		t.Fatalf("%s: causeway control exited early (%v):\n%s", p.cluster, err, b)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: no REST API within 60s", p.cluster)
	}
}

// serveGateway stands in for east's east-west gateway as far as linked
// clusters' health probes see it: on the plane's gateway address, a TLS
// server proving the gateway's SPIFFE ID with an SVID from the CA the
// control plane keeps in the cluster's Secret. It ends when the listener is
// closed. (The real gateway, gateway/, is tested with traffic elsewhere;
// here only the import's readiness depends on it.)
func (p *plane) serveGateway(t *testing.T, ctx context.Context, id spiffeid.ID) {
	t.Helper()
	store, err := ca.NewSecretStore(p.kc.CoreV1(), "causeway-system", "causeway-ca")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.New(ctx, ca.Options{TrustDomain: spiffeid.RequireTrustDomainFromString(p.td), Store: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("%s: CA from its Secret: %v", p.cluster, err)
	}
	svid, err := c.NewSVIDSource(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tlsconfig.TLSServerConfig(svid)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := p.gwLis.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				_ = tls.Server(conn, cfg).Handshake()
			})
		}
	})
	t.Cleanup(func() { p.gwLis.Close(); wg.Wait() })
}

// get decodes one REST answer; a non-200 is an error (no snapshot yet is 503).
func (p *plane) get(path string, out any) error {
	resp, err := http.Get(p.restURL + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// service returns ns/name from the plane's served snapshot, nil if absent.
func (p *plane) service(ns, name string) (*spec.Service, error) {
	var r struct {
		Items []spec.Service `json:"items"`
	}
	if err := p.get("/api/v1/services", &r); err != nil {
		return nil, err
	}
	for i := range r.Items {
		if r.Items[i].Key.Namespace == ns && r.Items[i].Key.Name == name {
			return &r.Items[i], nil
		}
	}
	return nil, nil
}

// waitUntil polls ok every 20ms and returns how long it took to hold.
func waitUntil(t *testing.T, d time.Duration, what string, ok func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < d {
		var done bool
		if done, last = ok(); done {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v (last: %s)", what, d, last)
	return 0
}

// TestFederationKube runs two clusters, each its own kube-apiserver and
// `causeway control --kube` (CA in its own Secret, links in the federation
// Secret, as deploy/base's ServiceAccount), peers them with `causeway link
// generate` on east and `causeway link apply` on west over their REST APIs,
// then drives exports on east's apiserver with client-go and reads west's
// served snapshot: the import orders-east appears with east's gateway as
// its endpoint when a ServiceExport or the annotation exports the Service,
// and goes when the export is withdrawn. East finds its gateway's address
// as a cluster does: --gateway-service follows a LoadBalancer Service whose
// status the test writes, and when that address moves, west's endpoint
// moves with it. Each step logs how long the change took to show on west.
func TestFederationKube(t *testing.T) {
	westCfg := kubetest.Config(t) // skips without the binaries
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// A second apiserver: a cluster of its own, not a namespace of west's.
	eastEnv, err := kubetest.Start(ctx)
	if err != nil {
		t.Fatalf("second kube-apiserver: %v", err)
	}
	defer eastEnv.Stop()
	t.Logf("second kube-apiserver ready in %v", eastEnv.Ready.Round(time.Millisecond))

	dir := t.TempDir()
	_, bin := kubeconfigAndBinary(t, ctx, westCfg, dir)
	west, westKC := prepare(t, ctx, "west", westCfg, dir)
	east, eastKC := prepare(t, ctx, "east", rest.CopyConfig(eastEnv.Config), dir)
	east.gwService = "causeway-gateway/causeway-gateway"
	gwHost, gwPortStr, _ := net.SplitHostPort(east.gateway)
	var gwPort int32
	fmt.Sscan(gwPortStr, &gwPort)
	// The gateway's Service as deploy/base declares it, its load balancer
	// address written into status as a cloud controller would.
	if _, err := east.kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "causeway-gateway"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	gwSvc, err := east.kc.CoreV1().Services("causeway-gateway").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "causeway-gateway", Namespace: "causeway-gateway"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Name: "tls-eastwest", Port: gwPort}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	moveGateway := func(t *testing.T, ip string) {
		t.Helper()
		gwSvc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
		if gwSvc, err = east.kc.CoreV1().Services("causeway-gateway").UpdateStatus(ctx, gwSvc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	moveGateway(t, gwHost)
	// East's federation Service (deploy/base's) on the port east listens
	// on, its load balancer known by a name: the token can only carry
	// "localhost" if it came from the Service, not from the listener.
	fedPorts, err := loopback.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	east.fedListen = fmt.Sprintf("127.0.0.1:%d", fedPorts[0])
	east.fedService = "causeway-system/causeway-federation"
	fedSvc, err := east.kc.CoreV1().Services("causeway-system").Get(ctx, "causeway-federation", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fedSvc.Spec.Ports[0].Port = int32(fedPorts[0])
	if fedSvc, err = east.kc.CoreV1().Services("causeway-system").Update(ctx, fedSvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	fedSvc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: "localhost"}}
	if _, err = east.kc.CoreV1().Services("causeway-system").UpdateStatus(ctx, fedSvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	west.start(t, bin, westKC)
	east.start(t, bin, eastKC)
	t.Logf("both control planes serve REST after %v", time.Since(start).Round(time.Millisecond))

	// Each CA lives in its own cluster's Secret, written by the control plane.
	for _, p := range []*plane{west, east} {
		s, err := p.kc.CoreV1().Secrets("causeway-system").Get(ctx, "causeway-ca", metav1.GetOptions{})
		if err != nil || len(s.Data) == 0 {
			t.Fatalf("%s: CA Secret causeway-system/causeway-ca: %v (%d keys)", p.cluster, err, len(s.Data))
		}
	}

	// Peer: the token comes from east, west applies it; both CLIs talk REST.
	start = time.Now()
	// East reads its federation Service's status soon after it starts;
	// until then tokens carry the listener's address. (Unused tokens
	// expire; generating more is harmless.)
	var token string
	wantAddr := fmt.Sprintf("localhost:%d", fedPorts[0])
	waitUntil(t, 30*time.Second, "east's token carries the federation Service's load balancer "+wantAddr, func() (bool, string) {
		out, err := exec.CommandContext(ctx, bin, "link", "generate", "--control-api", east.restURL, "--ttl", "5m").Output()
		if err != nil {
			t.Fatalf("link generate: %v", err)
		}
		token = strings.TrimSpace(string(out))
		tok, err := federation.ParseToken(token)
		if err != nil {
			t.Fatalf("link generate printed %q: %v", token, err)
		}
		return len(tok.Addrs) == 1 && tok.Addrs[0] == wantAddr, fmt.Sprint(tok.Addrs)
	})
	if out, err := exec.CommandContext(ctx, bin, "link", "apply", "--control-api", west.restURL, token).CombinedOutput(); err != nil {
		t.Fatalf("link apply: %v\n%s", err, out)
	}
	for _, p := range []struct {
		side *plane
		peer string
	}{{west, "east"}, {east, "west"}} {
		waitUntil(t, 30*time.Second, p.side.cluster+" sees an active link to "+p.peer, func() (bool, string) {
			var r struct {
				Items []struct {
					Cluster string         `json:"cluster"`
					State   spec.LinkState `json:"state"`
				} `json:"items"`
			}
			if err := p.side.get("/api/v1/links", &r); err != nil {
				return false, err.Error()
			}
			for _, l := range r.Items {
				if l.Cluster == p.peer && l.State == spec.LinkActive {
					return true, ""
				}
			}
			return false, fmt.Sprint(r.Items)
		})
	}
	t.Logf("link generate + apply until both sides are active: %v", time.Since(start).Round(time.Millisecond))

	const ns = "shop"
	gatewayID := "spiffe://east.causeway.local/ns/causeway-system/sa/causeway-gateway"
	east.serveGateway(t, ctx, spiffeid.RequireFromString(gatewayID))
	if _, err := east.kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: ns},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}}
	if _, err := east.kc.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready := true
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "orders-a", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: "orders"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.2.0.7"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8080)), Protocol: new(corev1.ProtocolTCP)}},
	}
	if _, err := east.kc.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// East has read the Service and its slice before west is asked
	// anything, so "not imported" below means "seen and not exported".
	waitUntil(t, 30*time.Second, "east serves orders with its endpoint", func() (bool, string) {
		own, err := east.service(ns, "orders")
		if err != nil {
			return false, err.Error()
		}
		return own != nil && !own.Export && len(own.Endpoints) == 1, fmt.Sprintf("%+v", own)
	})
	setAnnotation := func(v *string) func(t *testing.T) {
		return func(t *testing.T) {
			s, err := east.kc.CoreV1().Services(ns).Get(ctx, "orders", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if v == nil {
				delete(s.Annotations, "causeway.dev/export")
			} else {
				if s.Annotations == nil {
					s.Annotations = map[string]string{}
				}
				s.Annotations["causeway.dev/export"] = *v
			}
			if _, err := east.kc.CoreV1().Services(ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	steps := []struct {
		name   string
		change func(t *testing.T)
		want   bool   // west imports orders-east
		ready  bool   // ... with its gateway endpoint ready
		host   string // ... at this gateway host (default gwHost)
	}{
		{"a Service with endpoints but no export is not imported", func(*testing.T) {}, false, false, ""},
		{"a ServiceExport imports it", func(t *testing.T) {
			se := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
				"metadata": map[string]any{"name": "orders", "namespace": ns}}}
			if _, err := east.dyn.Resource(serviceExports).Namespace(ns).Create(ctx, se, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, true, true, ""},
		{"deleting the ServiceExport removes the import", func(t *testing.T) {
			if err := east.dyn.Resource(serviceExports).Namespace(ns).Delete(ctx, "orders", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, false, false, ""},
		{"the annotation imports it", setAnnotation(new("true")), true, true, ""},
		{"east's gateway stops answering: the import stays, not ready", func(*testing.T) { east.gwLis.Close() }, true, false, ""},
		{"the gateway's load balancer address moves: the endpoint follows", func(t *testing.T) { moveGateway(t, "127.0.0.2") }, true, false, "127.0.0.2"},
		{"removing the annotation removes the import", setAnnotation(nil), false, false, ""},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) {
			begin := time.Now()
			s.change(t)
			write := time.Since(begin)
			var imp *spec.Service
			took := waitUntil(t, 30*time.Second, fmt.Sprintf("west imports %s/orders-east = %v", ns, s.want), func() (bool, string) {
				var err error
				if imp, err = west.service(ns, "orders-east"); err != nil {
					return false, err.Error()
				}
				if imp == nil || !s.want {
					return imp == nil && !s.want, fmt.Sprintf("%+v", imp)
				}
				return len(imp.Endpoints) == 1 && imp.Endpoints[0].Ready == s.ready && imp.Endpoints[0].Addr == cmp.Or(s.host, gwHost), fmt.Sprintf("%+v", imp)
			})
			t.Logf("west shows the change (imported=%v ready=%v) %v after it was made on east (the write itself took %v)", s.want, s.ready, took.Round(time.Millisecond), write.Round(time.Millisecond))
			if !s.want {
				return
			}
			// The import as the multi-cluster contract names it: a local
			// Service whose one endpoint is east's gateway, proving east's
			// gateway ID, with east's name for the service behind it.
			if len(imp.Endpoints) != 1 {
				t.Fatalf("orders-east endpoints = %+v, want east's one gateway", imp.Endpoints)
			}
			ep := imp.Endpoints[0]
			if ep.Addr != cmp.Or(s.host, gwHost) || ep.Port != gwPort || ep.Gateway.String() != gatewayID ||
				ep.Remote != (spec.Key{Namespace: ns, Name: "orders"}) {
				t.Errorf("orders-east endpoint = %+v, want %s:%d gateway %s remote %s/orders", ep, cmp.Or(s.host, gwHost), gwPort, gatewayID, ns)
			}
			if imp.Key.Cluster != "" || imp.Export || len(imp.Ports) != 1 || imp.Ports[0].Port != 8080 {
				t.Errorf("orders-east = key %+v export %v ports %+v, want a local, unexported Service with port 8080", imp.Key, imp.Export, imp.Ports)
			}
			// East's own snapshot: orders is exported, with the pod endpoint.
			own, err := east.service(ns, "orders")
			if err != nil || own == nil || !own.Export || len(own.Endpoints) != 1 || own.Endpoints[0].Addr != "10.2.0.7" {
				t.Errorf("east's orders = %+v (%v), want exported with endpoint 10.2.0.7", own, err)
			}
		}) {
			return
		}
	}
}
