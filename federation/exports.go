package federation

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/util/validation"

	fedv1 "github.com/causeway-mesh/causeway/api/federation/v1"
	"github.com/causeway-mesh/causeway/spec"
)

func protoEqual(a, b proto.Message) bool { return proto.Equal(a, b) }

// localExports builds our Exports (without nonce) and the channel closed at
// the next change of anything in it other than the bundle (the session
// watches the bundle itself).
func (l *Links) localExports() (*fedv1.Exports, <-chan struct{}) {
	l.mu.Lock()
	svcs, gateways, ch := l.exports, l.gateways, l.local
	l.mu.Unlock()
	m := &fedv1.Exports{
		Bundle:       encodeRoots(l.opts.Bundle.Bundle().X509Authorities()),
		GatewayAddrs: gateways,
		Services:     svcs,
	}
	if !l.opts.GatewayID.IsZero() {
		m.GatewayId = l.opts.GatewayID.String()
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m) // fields set above: cannot fail
	sum := sha256.Sum256(b)
	m.Version = hex.EncodeToString(sum[:8])
	return m, ch
}

// acceptExports checks a peer's Exports: the bundle must parse, gateways
// must be host:port with an ID in the peer's trust domain, and every
// service must be a valid key with valid ports and identities in the
// peer's trust domain. An error becomes the NACK's detail, naming the field.
func acceptExports(m *fedv1.Exports, td spiffeid.TrustDomain) (*imported, []byte, error) {
	roots, err := parseRoots(m.Bundle)
	if err != nil {
		return nil, nil, fmt.Errorf("exports %s: bundle: %w", m.Version, err)
	}
	im := &imported{version: m.Version, gateways: slices.Clone(m.GatewayAddrs)}
	slices.Sort(im.gateways)
	im.gateways = slices.Compact(im.gateways)
	for i, g := range im.gateways {
		if _, err := splitAddr(g); err != nil {
			return nil, nil, fmt.Errorf("exports %s: gatewayAddrs[%d]: %w", m.Version, i, err)
		}
	}
	if m.GatewayId != "" {
		id, err := spiffeid.FromString(m.GatewayId)
		if err != nil {
			return nil, nil, fmt.Errorf("exports %s: gatewayId: %w", m.Version, err)
		}
		if !id.MemberOf(td) {
			return nil, nil, fmt.Errorf("exports %s: gatewayId %s is not in the peer's trust domain %s", m.Version, id, td)
		}
		im.gatewayID = id
	} else if len(im.gateways) > 0 {
		return nil, nil, fmt.Errorf("exports %s: gatewayId: empty while gatewayAddrs are set", m.Version)
	}
	seen := map[spec.Key]bool{}
	for i, e := range m.Services {
		f := "services[" + strconv.Itoa(i) + "]"
		k := spec.Key{Namespace: e.Namespace, Name: e.Name}
		// The peer's names become ours (<name>-<cluster>), in keys, SNI
		// and other meshes' resources: they must be what Kubernetes
		// allows a Namespace and a Service to be called.
		if errs := validation.IsDNS1123Label(k.Namespace); len(errs) > 0 {
			return nil, nil, fmt.Errorf("exports %s: %s.namespace %q: %s", m.Version, f, k.Namespace, strings.Join(errs, "; "))
		}
		if errs := validation.IsDNS1035Label(k.Name); len(errs) > 0 {
			return nil, nil, fmt.Errorf("exports %s: %s.name %q: %s", m.Version, f, k.Name, strings.Join(errs, "; "))
		}
		if seen[k] {
			return nil, nil, fmt.Errorf("exports %s: %s: duplicate service %s", m.Version, f, k)
		}
		seen[k] = true
		svc := spec.Service{Key: k}
		for j, p := range e.Ports {
			proto := spec.Protocol(p.Protocol)
			if p.Port < 1 || p.Port > 65535 || !proto.Valid() || p.TargetPort < 0 || p.TargetPort > 65535 {
				return nil, nil, fmt.Errorf("exports %s: %s (%s).ports[%d]: invalid port %d/%q", m.Version, f, k, j, p.Port, p.Protocol)
			}
			svc.Ports = append(svc.Ports, spec.Port{Name: p.Name, Port: p.Port, Protocol: proto, TargetPort: p.TargetPort})
		}
		for j, s := range e.Identities {
			id, err := spiffeid.FromString(s)
			if err != nil {
				return nil, nil, fmt.Errorf("exports %s: %s (%s).identities[%d]: %w", m.Version, f, k, j, err)
			}
			if !id.MemberOf(td) {
				return nil, nil, fmt.Errorf("exports %s: %s (%s).identities[%d]: %s is not in the peer's trust domain %s", m.Version, f, k, j, id, td)
			}
			svc.Identities = append(svc.Identities, id)
		}
		im.services = append(im.services, svc)
	}
	return im, encodeRoots(roots), nil
}
