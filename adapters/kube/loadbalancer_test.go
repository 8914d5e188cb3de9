package kube_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/adapters/kube"
)

func TestParseServiceRef(t *testing.T) {
	cases := []struct {
		in      string
		want    kube.ServiceRef
		wantErr bool
	}{
		{in: "causeway-gateway/causeway-gateway", want: kube.ServiceRef{Namespace: "causeway-gateway", Name: "causeway-gateway"}},
		{in: "gw/eastwest:tls", want: kube.ServiceRef{Namespace: "gw", Name: "eastwest", Port: "tls"}},
		{in: "gw/eastwest:15443", want: kube.ServiceRef{Namespace: "gw", Name: "eastwest", Port: "15443"}},
		{in: "eastwest", wantErr: true},
		{in: "gw/eastwest:", wantErr: true},
		{in: "GW/eastwest", wantErr: true},
		{in: "gw/", wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := kube.ParseServiceRef(c.in)
			if (err != nil) != c.wantErr || got != c.want {
				t.Fatalf("ParseServiceRef(%q) = %+v, %v; want %+v, error %v", c.in, got, err, c.want, c.wantErr)
			}
			if err == nil && got.String() != c.in {
				t.Errorf("String() = %q, want %q", got.String(), c.in)
			}
		})
	}
}

func gatewaySvc(ports []corev1.ServicePort, ingress []corev1.LoadBalancerIngress, external ...string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "gw", Name: "eastwest"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: ports, ExternalIPs: external},
		Status:     corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: ingress}},
	}
}

func TestLoadBalancerAddrs(t *testing.T) {
	one := []corev1.ServicePort{{Name: "tls", Port: 443}}
	two := []corev1.ServicePort{{Name: "status", Port: 15021}, {Name: kube.GatewayPortName, Port: 15443}}
	lb := []corev1.LoadBalancerIngress{{IP: "203.0.113.9"}, {Hostname: "gw.example.net"}, {IP: "2001:db8::7"}, {IP: "203.0.113.9"}}
	cases := []struct {
		name    string
		svc     *corev1.Service
		port    string
		want    []string
		wantErr string
	}{
		{name: "one port, ingress IPs and hostnames", svc: gatewaySvc(one, lb), want: []string{"203.0.113.9:443", "[2001:db8::7]:443", "gw.example.net:443"}},
		{name: "several ports: the tls-eastwest one", svc: gatewaySvc(two, lb[:1]), want: []string{"203.0.113.9:15443"}},
		{name: "port named", svc: gatewaySvc(two, lb[:1]), port: "status", want: []string{"203.0.113.9:15021"}},
		{name: "port numbered", svc: gatewaySvc(two, lb[:1]), port: "15021", want: []string{"203.0.113.9:15021"}},
		{name: "external IPs count", svc: gatewaySvc(one, nil, "192.0.2.4"), want: []string{"192.0.2.4:443"}},
		{name: "load balancer still pending", svc: gatewaySvc(one, nil), want: nil},
		{name: "no such port", svc: gatewaySvc(two, lb), port: "grpc", wantErr: `Service gw/eastwest: spec.ports: no port named or numbered "grpc"`},
		{name: "several ports, none named tls-eastwest", svc: gatewaySvc([]corev1.ServicePort{{Name: "a", Port: 1}, {Name: "b", Port: 2}}, lb), wantErr: "tls-eastwest"},
		{name: "no ports", svc: gatewaySvc(nil, lb), wantErr: "spec.ports: no ports"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := kube.LoadBalancerAddrs(c.svc, c.port, kube.GatewayPortName)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

// TestWatchLoadBalancer follows a LoadBalancer Service on the real
// apiserver, as the control plane's ServiceAccount (so deploy/base's RBAC
// is what allows it): the address appears when the load balancer's status
// is written, moves when it changes, a bad port change keeps the last good
// one, and deletion clears it.
func TestWatchLoadBalancer(t *testing.T) {
	admin, cp := cluster(t)
	ac := kubernetes.NewForConfigOrDie(admin)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := fmt.Sprintf("gw-watch-%d", time.Now().UnixNano()%1e6)
	if _, err := ac.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ac.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })

	sets := make(chan []string, 16)
	errs := make(chan error, 16)
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		g := kube.ServiceRef{Namespace: ns, Name: "eastwest"}
		if err := kube.WatchLoadBalancer(wctx, kubernetes.NewForConfigOrDie(cp), g, kube.GatewayPortName, func(a []string) { sets <- a }, func(err error) { errs <- err }); err != nil {
			t.Errorf("WatchLoadBalancer: %v", err)
		}
	})
	defer func() { stop(); wg.Wait() }()
	next := func(what string) []string {
		t.Helper()
		select {
		case a := <-sets:
			return a
		case err := <-errs:
			t.Fatalf("%s: got error %v", what, err)
		case <-ctx.Done():
			t.Fatalf("%s: nothing within the deadline", what)
		}
		return nil
	}

	// A Service not named eastwest in the same namespace is not seen.
	other := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
		Ports: []corev1.ServicePort{{Name: "tls", Port: 1}}}}
	if _, err := ac.CoreV1().Services(ns).Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "eastwest"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
		Ports: []corev1.ServicePort{{Name: kube.GatewayPortName, Port: 15443}, {Name: "status", Port: 15021}}}}
	svc, err := ac.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := next("created, load balancer pending"); len(got) != 0 {
		t.Fatalf("pending load balancer gave %v, want no address", got)
	}
	setIngress := func(ips ...string) {
		t.Helper()
		var in []corev1.LoadBalancerIngress
		for _, ip := range ips {
			in = append(in, corev1.LoadBalancerIngress{IP: ip})
		}
		svc.Status.LoadBalancer.Ingress = in
		if svc, err = ac.CoreV1().Services(ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setIngress("192.0.2.10")
	if got := next("load balancer provisioned"); !slices.Equal(got, []string{"192.0.2.10:15443"}) {
		t.Fatalf("got %v", got)
	}
	setIngress("192.0.2.11", "192.0.2.12")
	if got := next("load balancer moved"); !slices.Equal(got, []string{"192.0.2.11:15443", "192.0.2.12:15443"}) {
		t.Fatalf("got %v", got)
	}
	// Renaming the port away is an error; the last addresses are not
	// replaced.
	svc.Spec.Ports[0].Name = "renamed"
	if svc, err = ac.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "Service "+ns+"/eastwest: spec.ports") {
			t.Fatalf("error %q does not name the Service and field", err)
		}
	case a := <-sets:
		t.Fatalf("a Service without the gateway port set addresses %v", a)
	case <-ctx.Done():
		t.Fatal("no error for the renamed port")
	}
	if err := ac.CoreV1().Services(ns).Delete(ctx, "eastwest", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := next("deleted"); len(got) != 0 {
		t.Fatalf("deleted Service gave %v, want no address", got)
	}
}
