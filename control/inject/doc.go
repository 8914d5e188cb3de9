// Package inject is Causeway's sidecar injector (issue 5): the mutating
// admission webhook the control plane serves, and the same injection for
// `causeway inject -f` offline.
//
// # What enters
//
// A Config (proxy image, the control plane's address and SPIFFE ID, where
// the Workload API socket comes from, ports, the proxy's uid) and pods: an
// admission.k8s.io/v1 AdmissionReview on PathNamespace or PathPod
// (Webhook), or a *corev1.Pod (Injector.Pod).
//
// # Who is injected
//
// A pod whose namespace or itself has causeway.dev/inject=enabled, unless
// the pod says disabled, is in kube-system/kube-public/kube-node-lease, uses
// the host network, already has the sidecar (injecting twice is injecting
// once: the webhook is reinvoked with reinvocationPolicy IfNeeded), or its
// namespace enforces the baseline or restricted Pod Security level (which
// would refuse the init container's NET_ADMIN/NET_RAW, and so the pod). A
// pod that opted in but cannot be injected is still allowed, with a warning.
//
// # What leaves
//
// A JSON Patch (Patch) that adds, for an injected pod:
//
//	initContainers[0]  causeway-init: `causeway init-redirect` (NET_ADMIN, NET_RAW,
//	                   uid 0) REDIRECTs inbound TCP to the proxy's inbound port,
//	                   except from the node's address (kubelet probes) and the
//	                   causeway.dev/skip-inbound-ports ports (internal/redirect)
//	initContainers[1]  causeway-proxy: `causeway proxy` as a native sidecar
//	                   (restartPolicy Always: up before the app, no block on Job
//	                   completion) as uid 2102, --control, --control-id,
//	                   --spiffe-socket, --node $(POD_NAME).$(POD_NAMESPACE),
//	                   --service per Service the pod backs, and with a token
//	                   audience --spiffe-token-file
//	volumes            causeway-bootstrap: a downward API file of the
//	                   causeway.dev/proxy-bootstrap annotation (the bootstrap,
//	                   without a ConfigMap per namespace); causeway-spiffe: the
//	                   Workload API socket dir (SPIRE's CSI driver, or hostPath);
//	                   causeway-token (Config.SPIFFE.TokenAudience set): a
//	                   projected ServiceAccount token for that audience,
//	                   mounted by the proxy only
//	containers[*].env  HTTP_PROXY/http_proxy = the proxy's forward proxy,
//	                   NO_PROXY for loopback, unless the container sets them
//	annotations        causeway.dev/injected, proxy-image, proxy-bootstrap,
//	                   services (when resolved)
//
// By default outbound traffic is not redirected: apps reach the proxy
// through HTTP_PROXY. A pod annotated causeway.dev/outbound: transparent
// instead gets `init-redirect --outbound-port=<TransparentPort>` (15001;
// the proxy's uid is exempt), a bootstrap with outbound.transparent on that
// port and inbound.transparent (unmeshed clients passed through to the app
// in permissive mode), and no HTTP_PROXY variables. Any other value warns
// and keeps the default. testdata/pod-*.golden.yaml pin both shapes. The Services a pod backs are unknown at admission unless they
// already exist: KubeServices matches their selectors then, and the
// causeway.dev/services annotation overrides.
//
// The webhook's TLS certificate comes from a WebhookCA of its own (not the
// mesh CA; see WebhookCA), whose certificate PublishCABundle merges into the
// webhook configuration's caBundle next to the other replicas'.
//
// # Which Workload API
//
// Two, chosen by Config.SPIFFE. By default a SPIRE agent's socket through
// SPIRE's CSI driver: the agent attests the pod itself (kubelet, k8s
// workload attestor) and the CA keys stay on the SPIRE server. With
// Causeway's own CA in cluster mode (deploy/base), the socket of
// Causeway's node agent (`causeway identity serve --attest tokenreview`,
// a DaemonSet) through a hostPath, plus a projected ServiceAccount token:
// every pod of the node shares that socket and every proxy runs as the same
// uid, so peer credentials cannot tell pods apart; a token bound to the pod,
// for Causeway's audience only, can, and deleting the pod revokes it. The
// hostPath costs nothing extra: namespaces that can be injected already run
// at the privileged Pod Security level (the init step's NET_ADMIN).
//
// # Goroutines
//
// None of its own: Webhook.Handler runs on the http.Server's goroutines, and
// Injector is stateless, so concurrent reviews are safe. ServingConfig's
// GetCertificate reissues under a mutex.
package inject
