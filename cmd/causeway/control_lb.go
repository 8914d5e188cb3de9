package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/adapters/kube"
)

// lbFollow is a Service of this cluster whose load balancer addresses are
// followed and handed to federation as they change (--gateway-service,
// --federation-service).
type lbFollow struct {
	flag        string // for messages: "--gateway-service"
	ref         kube.ServiceRef
	defaultPort string // the Service's port when ref names none and it has several
	apply       func([]string) error
	applied     string // logged with the addresses once applied
	empty       string // logged when the Service has no address
}

// parseFollow reads a NAMESPACE/NAME[:PORT] flag value; nil when it is
// empty or when the static addresses it would replace are set (those win).
func parseFollow(flag, value string, static bool) (*kube.ServiceRef, error) {
	if value == "" {
		return nil, nil
	}
	ref, err := kube.ParseServiceRef(value)
	if err != nil {
		return nil, usageErr("control: %s: %v", flag, err)
	}
	if static {
		return nil, nil
	}
	return &ref, nil
}

// startFollows watches each Service until ctx ends, on a goroutine of its
// own; the returned function waits for them. A watch that cannot start
// (its cache never syncs) is reported on errc.
func startFollows(ctx context.Context, client kubernetes.Interface, follows []lbFollow, log *slog.Logger, errc chan<- error) func() {
	var wg sync.WaitGroup
	for _, f := range follows {
		wg.Go(func() {
			svc := f.ref.String()
			err := kube.WatchLoadBalancer(ctx, client, f.ref, f.defaultPort, func(addrs []string) {
				if err := f.apply(addrs); err != nil {
					log.Error("federation: addresses refused; the last ones stay", "flag", f.flag, "service", svc, "err", err)
					return
				}
				if len(addrs) == 0 {
					log.Warn("federation: "+f.empty, "flag", f.flag, "service", svc)
					return
				}
				log.Info("federation: "+f.applied, "flag", f.flag, "service", svc, "addrs", addrs)
			}, func(err error) {
				log.Error("federation: Service unusable; the last addresses stay", "flag", f.flag, "err", err)
			})
			if err != nil {
				errc <- fmt.Errorf("federation: %s: %w", f.flag, err)
			}
		})
	}
	return wg.Wait
}
