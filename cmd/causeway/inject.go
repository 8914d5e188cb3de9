package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/control/inject"
	"github.com/causeway-mesh/causeway/internal/redirect"
)

// injectFlags configure the sidecar injector; `causeway inject` and
// `causeway control --webhook-listen` share them, so offline and admission
// injection produce the same pods.
type injectFlags struct {
	image       string
	controlAddr string
	controlID   string
	csiDriver   string
	hostPath    string
	socketName  string
	tokenAud    string
	proxyUID    int64
	inbound     int32
	httpProxy   int32
}

func (f *injectFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.image, "proxy-image", "ghcr.io/causeway-mesh/causeway:"+imageTag(), "image of the injected proxy and init step")
	fl.StringVar(&f.controlAddr, "proxy-control-addr", "causeway-control-plane.causeway-system.svc:15010", "control plane gRPC address as injected proxies reach it")
	// The default is the identity `causeway control` gives itself from its
	// local CA (controlCreds); with a SPIRE-issued SVID, pass its ID.
	fl.StringVar(&f.controlID, "proxy-control-id", "spiffe://cluster.local/ns/causeway/sa/control", "the control plane's SPIFFE ID, which injected proxies check")
	fl.StringVar(&f.csiDriver, "spiffe-csi-driver", "", "CSI driver that mounts the SPIFFE Workload API socket dir (default csi.spiffe.io)")
	fl.StringVar(&f.hostPath, "spiffe-host-path", "", "node directory holding the Workload API socket, instead of a CSI driver")
	fl.StringVar(&f.socketName, "spiffe-socket-name", "", "Workload API socket file name in that directory (default spire-agent.sock)")
	fl.StringVar(&f.tokenAud, "spiffe-token-audience", "", "give the proxy a projected ServiceAccount token for this audience (--spiffe-token-file), for Causeway's node agent (identity serve --attest tokenreview); empty for a SPIRE agent")
	fl.Int64Var(&f.proxyUID, "proxy-uid", inject.DefaultProxyUID, "uid of the injected proxy (never redirected)")
	fl.Int32Var(&f.inbound, "proxy-inbound-port", inject.DefaultInboundPort, "the proxy's inbound port, where inbound TCP is redirected")
	fl.Int32Var(&f.httpProxy, "proxy-http-port", inject.DefaultHTTPProxyPort, "the proxy's HTTP forward proxy port (apps' HTTP_PROXY)")
}

func imageTag() string {
	if version == "dev" {
		return "latest"
	}
	return version
}

func (f *injectFlags) injector(svc inject.ServiceResolver, nsr inject.NamespaceReader) (*inject.Injector, error) {
	in, err := inject.New(inject.Config{
		Image: f.image, ControlAddr: f.controlAddr, ControlID: f.controlID,
		SPIFFE:      inject.SPIFFESource{CSIDriver: f.csiDriver, HostPath: f.hostPath, SocketName: f.socketName, TokenAudience: f.tokenAud},
		ProxyUID:    f.proxyUID,
		InboundPort: f.inbound, HTTPProxyPort: f.httpProxy,
		Services: svc, Namespaces: nsr,
	})
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return in, nil
}

func newInjectCmd() *cobra.Command {
	var (
		f     injectFlags
		files []string
	)
	cmd := &cobra.Command{
		Use:   "inject -f FILE... [flags]",
		Short: "Add the Causeway sidecar to the pods and workloads in Kubernetes YAML",
		Long: `Read Kubernetes YAML (-f FILE, -f - for stdin) and print it with the Causeway
sidecar injected into every Pod and every pod template (Deployment,
StatefulSet, DaemonSet, ReplicaSet, Job, CronJob), as the control plane's
admission webhook would: an init container that redirects inbound TCP to the
proxy, the proxy as a native sidecar, its volumes and annotations, and
HTTP_PROXY on the app containers. Other objects pass through unchanged.

Every workload counts as opted in, except those with causeway.dev/inject:
disabled; already injected ones are left as they are, so running the
command twice changes nothing. Warnings go to stderr.

  causeway inject -f deploy.yaml | kubectl apply -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return usageErr("inject: -f FILE is required")
			}
			return runInject(cmd.Context(), f, files, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "YAML file to inject (repeatable; - for stdin)")
	f.register(cmd.Flags())
	return cmd
}

// templatePaths are the JSON pointers of pod templates, by kind.
var templatePaths = map[string]string{
	"Pod":         "",
	"Deployment":  "/spec/template",
	"StatefulSet": "/spec/template",
	"DaemonSet":   "/spec/template",
	"ReplicaSet":  "/spec/template",
	"Job":         "/spec/template",
	"CronJob":     "/spec/jobTemplate/spec/template",
}

// rawDoc is one YAML document of the input, as JSON.
type rawDoc struct {
	file  string
	index int
	json  []byte
}

func runInject(ctx context.Context, cfg injectFlags, files []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var docs []rawDoc
	for _, file := range files {
		ds, err := readDocs(file, stdin)
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("inject: %w", err)}
		}
		docs = append(docs, ds...)
	}
	// Services in the same input tell which Services a workload backs, as
	// the webhook learns from the cluster.
	in, err := cfg.injector(manifestServicesOf(docs), nil)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	for n, d := range docs {
		doc, warns, err := injectDoc(ctx, in, d.json)
		for _, w := range warns {
			fmt.Fprintf(stderr, "causeway: warning: %s: document %d: %s\n", d.file, d.index, w)
		}
		if err == nil {
			doc, err = yaml.JSONToYAML(doc)
		}
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("inject: %s: document %d: %w", d.file, d.index, err)}
		}
		if n > 0 {
			out.WriteString("---\n")
		}
		out.Write(doc)
	}
	_, err = stdout.Write(out.Bytes())
	return err
}

// readDocs reads every non-empty YAML or JSON document of file ("-" =
// stdin) as JSON.
func readDocs(file string, stdin io.Reader) ([]rawDoc, error) {
	r := stdin
	if file != "-" {
		fh, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer fh.Close()
		r = fh
	}
	var out []rawDoc
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	for i := 0; ; i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" {
			continue
		}
		out = append(out, rawDoc{file: file, index: i, json: raw})
	}
}

// manifestServices resolves a pod's Services from the v1 Services among the
// input documents, by selector, as the cluster would.
type manifestServices []corev1.Service

func (ms manifestServices) PodServices(_ context.Context, namespace string, podLabels map[string]string) ([]string, error) {
	var out []string
	for _, s := range ms {
		ns := s.Namespace
		if ns == "" {
			ns = "default"
		}
		if ns == namespace && len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(podLabels)) {
			out = append(out, ns+"/"+s.Name)
		}
	}
	return out, nil
}

func manifestServicesOf(docs []rawDoc) manifestServices {
	var out manifestServices
	for _, d := range docs {
		var s corev1.Service
		if json.Unmarshal(d.json, &s) == nil && s.APIVersion == "v1" && s.Kind == "Service" {
			out = append(out, s)
		}
	}
	return out
}

// injectDoc injects one object's pod (template) through the same JSON Patch
// the webhook returns, so the rest of the document is left as it was.
func injectDoc(ctx context.Context, in *inject.Injector, raw []byte) ([]byte, []string, error) {
	var head struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, nil, err
	}
	path, ok := templatePaths[head.Kind]
	if !ok {
		return raw, nil, nil
	}
	tmpl, err := subtree(raw, path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", head.Kind, head.Metadata.Name, err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(tmpl, &pod); err != nil {
		return nil, nil, fmt.Errorf("%s %s: pod template: %w", head.Kind, head.Metadata.Name, err)
	}
	ns := head.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	if pod.Name == "" {
		pod.Name = head.Metadata.Name // for messages: templates have no name
	}
	res := in.Pod(ctx, &pod, ns, true)
	if res.Pod == nil {
		return raw, res.Warnings, nil
	}
	ops, err := inject.Patch(&pod, res.Pod)
	if err != nil {
		return nil, res.Warnings, err
	}
	for i := range ops {
		ops[i].Path = path + ops[i].Path
	}
	pb, err := json.Marshal(ops)
	if err != nil {
		return nil, res.Warnings, err
	}
	p, err := jsonpatch.DecodePatch(pb)
	if err != nil {
		return nil, res.Warnings, err
	}
	doc, err := p.Apply(raw)
	return doc, res.Warnings, err
}

// subtree returns the JSON value at pointer path ("" = the whole document).
func subtree(doc []byte, path string) ([]byte, error) {
	cur := doc
	for seg := range strings.SplitSeq(strings.TrimPrefix(path, "/"), "/") {
		if seg == "" {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(cur, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		next, ok := m[seg]
		if !ok {
			return nil, fmt.Errorf("%s: no %q", path, seg)
		}
		cur = next
	}
	return cur, nil
}

// newInitRedirectCmd is the injected init container's command: it applies
// the redirect rules in the pod's network namespace and exits. Hidden: it is
// for the injector, not for people.
func newInitRedirectCmd() *cobra.Command {
	var (
		inbound, outbound                   uint16
		proxyUID                            uint32
		skipIn, skipOut, skipSrc, skipCIDRs string
		includeIn                           string
		dryRun                              bool
	)
	cmd := &cobra.Command{
		Use:    "init-redirect --inbound-port PORT --proxy-uid UID [flags]",
		Short:  "Redirect the pod's traffic to its Causeway sidecar (the injected init container)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := redirect.Rules{InboundPort: inbound, OutboundPort: outbound}
			if cmd.Flags().Changed("proxy-uid") {
				r.ProxyUID = &proxyUID
			}
			var err error
			parse := func(flag, s string, into *[]uint16) {
				if err == nil {
					if *into, err = redirect.ParsePorts(s); err != nil {
						err = usageErr("init-redirect: --%s: %v", flag, err)
					}
				}
			}
			parse("skip-inbound-ports", skipIn, &r.SkipInboundPorts)
			parse("include-inbound-ports", includeIn, &r.IncludeInboundPorts)
			parse("skip-outbound-ports", skipOut, &r.SkipOutboundPorts)
			if err != nil {
				return err
			}
			if r.SkipInboundSources, err = ipv4Prefixes(cmd.ErrOrStderr(), skipSrc); err != nil {
				return usageErr("init-redirect: --skip-inbound-sources: %v", err)
			}
			if r.SkipOutboundCIDRs, err = redirect.ParsePrefixes(skipCIDRs); err != nil {
				return usageErr("init-redirect: --skip-outbound-cidrs: %v", err)
			}
			if err := r.Validate(); err != nil {
				return usageErr("init-redirect: %v", err)
			}
			out := cmd.OutOrStdout()
			if dryRun {
				b, err := r.Render()
				if err != nil {
					return usageErr("init-redirect: %v", err)
				}
				_, err = out.Write(b)
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			applied, err := redirect.Runner{}.Apply(ctx, r)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			// The rules in the init container's log: what `kubectl logs -c
			// causeway-init` shows when traffic goes astray.
			_, err = out.Write(applied)
			return err
		},
	}
	fl := cmd.Flags()
	fl.Uint16Var(&inbound, "inbound-port", 0, "redirect inbound TCP to this port (the proxy's inbound listener); 0 = none")
	fl.Uint16Var(&outbound, "outbound-port", 0, "redirect outbound TCP to this port (the proxy's outbound.transparent listener); 0 = none")
	fl.Uint32Var(&proxyUID, "proxy-uid", 0, "the proxy's uid, never redirected (required with --outbound-port)")
	fl.StringVar(&skipIn, "skip-inbound-ports", "", "comma-separated inbound ports that bypass the proxy")
	fl.StringVar(&includeIn, "include-inbound-ports", "", "redirect only these inbound ports (default: all)")
	fl.StringVar(&skipSrc, "skip-inbound-sources", "", "comma-separated source addresses/CIDRs that bypass the proxy (the node's, for kubelet probes)")
	fl.StringVar(&skipOut, "skip-outbound-ports", "", "comma-separated outbound ports that bypass the proxy")
	fl.StringVar(&skipCIDRs, "skip-outbound-cidrs", "", "comma-separated destination CIDRs that bypass the proxy")
	fl.BoolVar(&dryRun, "dry-run", false, "print the iptables-restore input instead of applying it")
	return cmd
}

// ipv4Prefixes parses s and drops IPv6 entries with a note: on a dual-stack
// node status.hostIP may be IPv6, and the rules are IPv4 only.
func ipv4Prefixes(stderr io.Writer, s string) ([]netip.Prefix, error) {
	ps, err := redirect.ParsePrefixes(s)
	if err != nil {
		return nil, err
	}
	out := ps[:0]
	for _, p := range ps {
		if p.Addr().Is4() {
			out = append(out, p)
		} else {
			fmt.Fprintf(stderr, "causeway: init-redirect: %s is IPv6; only IPv4 traffic is redirected, so it needs no exception\n", p)
		}
	}
	return out, nil
}

// webhookFlags are `causeway control`'s sidecar-injector flags.
type webhookFlags struct {
	listen  string
	service string
	config  string
	certTTL time.Duration
	inject  injectFlags
}

func (w *webhookFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&w.listen, "webhook-listen", "", "HTTPS address of the sidecar-injector webhook (e.g. :9443); empty disables it")
	fl.StringVar(&w.service, "webhook-service", "causeway-control-plane.causeway-system", "the webhook's Service as NAME.NAMESPACE: the serving certificate's DNS names")
	fl.StringVar(&w.config, "webhook-config", "causeway-sidecar-injector", "MutatingWebhookConfiguration whose caBundle gets this replica's webhook CA (with --kube); empty skips it")
	fl.DurationVar(&w.certTTL, "webhook-cert-ttl", 30*24*time.Hour, "webhook serving certificate lifetime (reissued at two thirds); its CA lives a year")
	w.inject.register(fl)
}

// startWebhook serves the injector on w.listen with a certificate from a
// fresh webhook CA, and, given a cluster, publishes that CA into the
// webhook configuration's caBundle (retrying in the background until it
// works: the apiserver calls this replica only once it trusts its CA).
// Serve errors go to errc. It returns nil, nil when the webhook is off.
func startWebhook(ctx context.Context, w webhookFlags, kube *rest.Config, log *slog.Logger, errc chan<- error) (*http.Server, error) {
	if w.listen == "" {
		return nil, nil
	}
	name, ns, ok := strings.Cut(w.service, ".")
	if !ok || name == "" || ns == "" {
		return nil, usageErr("control: --webhook-service %q: want NAME.NAMESPACE", w.service)
	}
	var (
		client     kubernetes.Interface
		resolver   inject.ServiceResolver
		namespaces inject.NamespaceReader
	)
	if kube != nil {
		cs, err := kubernetes.NewForConfig(kube)
		if err != nil {
			return nil, fmt.Errorf("control: webhook: %w", err)
		}
		client, resolver, namespaces = cs, inject.KubeServices{Client: cs}, inject.KubeNamespaces{Client: cs}
	}
	in, err := w.inject.injector(resolver, namespaces)
	if err != nil {
		return nil, err
	}
	ca, err := inject.NewWebhookCA(time.Now(), 365*24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("control: webhook CA: %w", err)
	}
	// 127.0.0.1 too, so the webhook can be called on loopback (tests, and
	// a clientConfig.url during development).
	tlsCfg, err := ca.ServingConfig(w.certTTL, inject.ServiceDNSNames(name, ns), []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("control: webhook certificate: %w", err)
	}
	ln, err := net.Listen("tcp", w.listen)
	if err != nil {
		return nil, fmt.Errorf("control: --webhook-listen: %w", err)
	}
	srv := &http.Server{Handler: (&inject.Webhook{Injector: in, Logger: log}).Handler(), TLSConfig: tlsCfg,
		ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	log.Info("sidecar-injector webhook started", "addr", ln.Addr().String(), "service", w.service)
	if client != nil && w.config != "" {
		go publishCABundle(ctx, client, w.config, ca.PEM(), log)
	}
	return srv, nil
}

// publishCABundle retries inject.PublishCABundle with capped backoff until
// it succeeds or ctx ends.
func publishCABundle(ctx context.Context, client kubernetes.Interface, config string, caPEM []byte, log *slog.Logger) {
	delay := 500 * time.Millisecond
	for {
		err := inject.PublishCABundle(ctx, client, config, caPEM, time.Now())
		if err == nil {
			log.Info("webhook CA published", "mutatingwebhookconfiguration", config)
			return
		}
		log.Warn("webhook CA not published yet; retrying", "mutatingwebhookconfiguration", config, "err", err, "retry", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// kubeRESTConfig is the cluster config `causeway control --kube` uses.
func kubeRESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return rest.InClusterConfig()
}
