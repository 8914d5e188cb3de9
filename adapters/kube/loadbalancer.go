package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// GatewayPortName and FederationPortName are the ports of the east-west
// gateway's and the federation stream's Services that linked clusters
// dial, when a ServiceRef names no port and the Service has several
// (deploy/base names them so).
const (
	GatewayPortName    = "tls-eastwest"
	FederationPortName = "grpc-federation"
)

// ServiceRef names a Service that other networks reach this cluster
// through (the east-west gateway's, the federation stream's) and,
// optionally, its port (a name or a number).
type ServiceRef struct {
	Namespace, Name, Port string
}

func (g ServiceRef) String() string {
	s := g.Namespace + "/" + g.Name
	if g.Port != "" {
		s += ":" + g.Port
	}
	return s
}

// ParseServiceRef reads NAMESPACE/NAME or NAMESPACE/NAME:PORT.
func ParseServiceRef(s string) (ServiceRef, error) {
	ref, port, _ := strings.Cut(s, ":")
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1035Label(name)) > 0 {
		return ServiceRef{}, fmt.Errorf("service %q: want NAMESPACE/NAME[:PORT]", s)
	}
	if strings.Contains(s, ":") && port == "" {
		return ServiceRef{}, fmt.Errorf("service %q: empty port", s)
	}
	return ServiceRef{Namespace: ns, Name: name, Port: port}, nil
}

// LoadBalancerAddrs returns the host:port addresses at which other
// networks reach svc: each load balancer ingress (its IP, else its
// hostname) and each of spec.externalIPs, with the Service port that port
// names (a name or a number; empty: the only port, else the one named
// defaultPort).
// The list is sorted and without duplicates; it is empty while a load
// balancer is still being provisioned. A Service without that port is an
// error naming the field. NodePort addresses are not derived: which node
// addresses other networks can route to is not in the Service, so such
// setups name their addresses (causeway control --gateway-addr).
func LoadBalancerAddrs(svc *corev1.Service, port, defaultPort string) ([]string, error) {
	where := "Service " + svc.Namespace + "/" + svc.Name
	p, err := servicePort(svc.Spec.Ports, port, defaultPort)
	if err != nil {
		return nil, fmt.Errorf("%s: spec.ports: %w", where, err)
	}
	ps := strconv.Itoa(int(p))
	var out []string
	for _, in := range svc.Status.LoadBalancer.Ingress {
		switch {
		case in.IP != "":
			out = append(out, net.JoinHostPort(in.IP, ps))
		case in.Hostname != "":
			out = append(out, net.JoinHostPort(in.Hostname, ps))
		}
	}
	for _, ip := range svc.Spec.ExternalIPs {
		out = append(out, net.JoinHostPort(ip, ps))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func servicePort(ports []corev1.ServicePort, want, defaultPort string) (int32, error) {
	if want == "" {
		if len(ports) == 1 {
			return ports[0].Port, nil
		}
		want = defaultPort
	}
	for _, p := range ports {
		if p.Name == want || strconv.Itoa(int(p.Port)) == want {
			return p.Port, nil
		}
	}
	if len(ports) == 0 {
		return 0, errors.New("no ports")
	}
	return 0, fmt.Errorf("no port named or numbered %q", want)
}

// WatchLoadBalancer follows g with an informer on that one Service and
// calls set with its addresses (LoadBalancerAddrs, defaultPort when g names
// no port) whenever they change, and with none when the Service is deleted. A Service that yields no address
// (wrong port) calls onErr instead, and set is not called: the last good
// addresses stay. It returns when ctx ends, or with an error if the
// informer's cache never syncs. set and onErr run on one goroutine.
func WatchLoadBalancer(ctx context.Context, client kubernetes.Interface, g ServiceRef, defaultPort string, set func([]string), onErr func(error)) error {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(g.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", g.Name).String()
		}))
	inf := factory.Core().V1().Services().Informer()
	// The informer calls its handlers on one goroutine: last needs no lock.
	var last []string
	seen := false
	update := func(addrs []string) {
		if seen && slices.Equal(addrs, last) {
			return
		}
		seen, last = true, addrs
		set(addrs)
	}
	onSvc := func(obj any) {
		svc, ok := obj.(*corev1.Service)
		if !ok || svc.Name != g.Name {
			return
		}
		addrs, err := LoadBalancerAddrs(svc, g.Port, defaultPort)
		if err != nil {
			onErr(err)
			return
		}
		update(addrs)
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onSvc,
		UpdateFunc: func(_, obj any) { onSvc(obj) },
		DeleteFunc: func(any) { update(nil) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("Service %s: cache did not sync", g)
	}
	<-ctx.Done()
	return nil
}
