// Package spectest builds spec values for tests in other packages: short
// constructors for the objects a test needs, so tests read as the mesh they
// describe.
package spectest

import (
	"fmt"

	"github.com/causeway-mesh/causeway/spec"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// TrustDomain is the trust domain the helpers use.
const TrustDomain = "cluster.local"

// K makes a local key from "ns/name".
func K(nsName string) spec.Key {
	for i := 0; i < len(nsName); i++ {
		if nsName[i] == '/' {
			return spec.Key{Namespace: nsName[:i], Name: nsName[i+1:]}
		}
	}
	panic(fmt.Sprintf("spectest.K(%q): want ns/name", nsName))
}

// ID is the SPIFFE ID of service account ns/sa in TrustDomain.
func ID(ns, sa string) spiffeid.ID {
	id, err := spec.Identity(TrustDomain, ns, sa)
	if err != nil {
		panic(err)
	}
	return id
}

// HTTPService is a service with one HTTP port and the given endpoints
// ("127.0.0.1:8080" style addresses, all ready).
func HTTPService(nsName string, port int32, endpoints ...string) spec.Service {
	svc := spec.Service{Key: K(nsName), Ports: []spec.Port{{Name: "http", Port: port, Protocol: spec.ProtocolHTTP}}}
	for _, ep := range endpoints {
		svc.Endpoints = append(svc.Endpoints, Endpoint(ep))
	}
	return svc
}

// Endpoint parses "host:port" into a ready endpoint.
func Endpoint(addr string) spec.Endpoint {
	var host string
	var port int32
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			host = addr[:i]
			if _, err := fmt.Sscan(addr[i+1:], &port); err != nil {
				panic(fmt.Sprintf("spectest.Endpoint(%q): %v", addr, err))
			}
			break
		}
	}
	return spec.Endpoint{Addr: host, Port: port, Ready: true}
}

// Split makes a split of root among backends given as "ns/name", weight pairs.
func Split(nsName, root string, backends ...any) spec.Split {
	sp := spec.Split{Key: K(nsName), Root: K(root)}
	for i := 0; i+1 < len(backends); i += 2 {
		sp.Backends = append(sp.Backends, spec.Backend{Service: K(backends[i].(string)), Weight: int64(backends[i+1].(int)) * 1000})
	}
	return sp
}

// MustBuild builds a snapshot and panics on an error diagnostic.
func MustBuild(in spec.Input) *spec.Snapshot {
	s, diags := spec.Build(in, spec.BuildOptions{})
	if err := diags.Err(); err != nil {
		panic(fmt.Sprintf("spectest.MustBuild: %v", err))
	}
	return s
}

// Table builds, compiles for node and prepares, panicking on any error.
func Table(in spec.Input, node spec.Node) *spec.Table {
	t, err := spec.Compile(MustBuild(in), node).Prepare()
	if err != nil {
		panic(err)
	}
	return t
}
