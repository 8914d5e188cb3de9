package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/causeway-mesh/causeway/identity/ca"
)

// openCA opens the control plane's CA: in the Kubernetes Secret named by
// --ca-secret NAMESPACE/NAME (cluster mode), else in --ca-dir.
func (f controlFlags) openCA(ctx context.Context, log *slog.Logger) (*ca.CA, error) {
	if f.caSecret == "" {
		return f.ca.open(ctx, log)
	}
	ns, name, ok := strings.Cut(f.caSecret, "/")
	if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return nil, usageErr("--ca-secret %q: want NAMESPACE/NAME", f.caSecret)
	}
	// --kubeconfig, else $KUBECONFIG or ~/.kube/config, else in-cluster:
	// the Secret is used with --manifests too (a local control plane
	// keeping its CA in a cluster).
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("--ca-secret %s: kubernetes config: %w", f.caSecret, err)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("--ca-secret %s: %w", f.caSecret, err)
	}
	store, err := ca.NewSecretStore(kc.CoreV1(), ns, name)
	if err != nil {
		return nil, err
	}
	td, err := spiffeid.TrustDomainFromString(f.ca.trustDomain)
	if err != nil {
		return nil, usageErr("--trust-domain %q: %v", f.ca.trustDomain, err)
	}
	opts := ca.Options{TrustDomain: td, Store: store, SVIDTTL: f.ca.svidTTL, Overlap: f.ca.overlap, Logger: log}
	c, err := ca.New(ctx, opts)
	if errors.Is(err, ca.ErrConflict) {
		// Another replica created the CA between our read and our write:
		// run its CA, never replace it.
		log.Info("CA Secret created by another replica; loading it", "secret", f.caSecret)
		c, err = ca.New(ctx, opts)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}
