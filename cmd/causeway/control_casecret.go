package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/causeway-mesh/causeway/identity/ca"
)

// sharedCAFlags say where a CA that several processes share lives (a
// Kubernetes Secret) and which of them rotates it. `causeway control` and
// `causeway identity serve` take the same flags, so a node agent serving
// the Workload API can follow the control plane's CA.
type sharedCAFlags struct {
	secret string        // NAMESPACE/NAME of the CA Secret; empty: --ca-dir
	lease  string        // Lease electing the rotating replica; empty: never rotate, only follow
	follow time.Duration // how often the Secret is read for another replica's rotation
}

func (f *sharedCAFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.secret, "ca-secret", "", "keep the CA in this Kubernetes Secret (NAMESPACE/NAME) instead of --ca-dir; replicas share it")
	fl.StringVar(&f.lease, "ca-lease", "causeway-ca", "with --ca-secret: the Lease (in the Secret's namespace) whose holder alone rotates the CA; empty: never rotate, only follow the Secret")
	fl.DurationVar(&f.follow, "ca-follow-interval", ca.DefaultFollowInterval, "with --ca-secret: how often the Secret is read to pick up another replica's rotation")
}

// kubeClient builds a client from --kubeconfig, else $KUBECONFIG or
// ~/.kube/config, else the in-cluster config, as kubectl finds its cluster.
func kubeClient(kubeconfig string) (*kubernetes.Clientset, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes config: %w", err)
	}
	return kubernetes.NewForConfig(cfg)
}

// openCA opens the control plane's CA: in the Kubernetes Secret named by
// --ca-secret NAMESPACE/NAME (cluster mode), else in --ca-dir.
func (f controlFlags) openCA(ctx context.Context, log *slog.Logger) (*ca.CA, func(context.Context) error, error) {
	// --kubeconfig also reaches the Secret; without it the Secret is found
	// as kubectl finds its cluster, which lets a local control plane
	// (--manifests) keep its CA in a cluster.
	return f.caShared.open(ctx, f.ca, f.kubeconfig, log)
}

// open returns the CA and the loop that keeps it current: with --ca-dir,
// Run (this process alone rotates the directory's CA); with --ca-secret,
// RunShared under --ca-lease, or only Follow when the lease is empty.
func (f sharedCAFlags) open(ctx context.Context, cf caFlags, kubeconfig string, log *slog.Logger) (*ca.CA, func(context.Context) error, error) {
	if f.secret == "" {
		c, err := cf.open(ctx, log)
		if err != nil {
			return nil, nil, err
		}
		return c, c.Run, nil
	}
	ns, name, ok := strings.Cut(f.secret, "/")
	if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return nil, nil, usageErr("--ca-secret %q: want NAMESPACE/NAME", f.secret)
	}
	if f.lease != "" && len(validation.IsDNS1123Subdomain(f.lease)) > 0 {
		return nil, nil, usageErr("--ca-lease %q: not a valid Lease name", f.lease)
	}
	td, err := spiffeid.TrustDomainFromString(cf.trustDomain)
	if err != nil {
		return nil, nil, usageErr("--trust-domain %q: %v", cf.trustDomain, err)
	}
	kc, err := kubeClient(kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("--ca-secret %s: %w", f.secret, err)
	}
	store, err := ca.NewSecretStore(kc.CoreV1(), ns, name)
	if err != nil {
		return nil, nil, err
	}
	opts := cf.options(td, store, log)
	c, err := ca.New(ctx, opts)
	if errors.Is(err, ca.ErrConflict) {
		// Another replica created the CA between our read and our write:
		// run its CA, never replace it.
		log.Info("CA Secret created by another replica; loading it", "secret", f.secret)
		c, err = ca.New(ctx, opts)
	}
	if err != nil {
		return nil, nil, err
	}
	if f.lease == "" {
		log.Info("CA follows its Secret and never rotates it (--ca-lease is empty)", "secret", f.secret, "every", f.follow)
		return c, func(ctx context.Context) error { return c.Follow(ctx, f.follow) }, nil
	}
	// Outside a pod, the pid tells apart two replicas on one host: with one
	// identity both would believe they hold the Lease.
	lease := ca.Lease{Client: kc.CoordinationV1(), Namespace: ns, Name: f.lease,
		Identity: cmp.Or(os.Getenv("POD_NAME"), fmt.Sprintf("%s-%d", hostname(), os.Getpid()))}
	return c, func(ctx context.Context) error { return c.RunShared(ctx, lease, f.follow) }, nil
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// startCA runs the CA's loop (rotation, or following the Secret) on a
// goroutine of its own until the returned stop is called; stop waits for it.
func startCA(ctx context.Context, run func(context.Context) error, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("CA rotation stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}
