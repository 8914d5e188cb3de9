package gateway

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/spec"
)

// Target is what a caller asks the gateway for, read from its TLS SNI.
type Target struct {
	Service     spec.Key // Namespace and Name; Cluster is always empty
	Port        int32
	TrustDomain spiffeid.TrustDomain
}

// String is the SNI that names t (the inverse of ParseSNI).
func (t Target) String() string {
	return strconv.Itoa(int(t.Port)) + "." + t.Service.Name + "." + t.Service.Namespace + ".svc." + t.TrustDomain.Name()
}

var errSNIShape = errors.New("want <port>.<name>.<namespace>.svc.<trust-domain>")

// ParseSNI reads the mesh SNI a proxy sends (proxy's meshSNI, doc.go):
// <port>.<name>.<namespace>.svc.<trust-domain>. Service names and
// namespaces are DNS labels (no dots), so the first four labels are fixed
// and everything after "svc." is the trust domain, which may have dots.
func ParseSNI(sni string) (Target, error) {
	parts := strings.SplitN(sni, ".", 5)
	if len(parts) != 5 || parts[3] != "svc" {
		return Target{}, fmt.Errorf("SNI %q: %w", sni, errSNIShape)
	}
	port, err := strconv.ParseUint(parts[0], 10, 16)
	if err != nil || port == 0 || parts[0][0] == '0' {
		return Target{}, fmt.Errorf("SNI %q: port %q is not 1-65535", sni, parts[0])
	}
	if parts[1] == "" || parts[2] == "" {
		return Target{}, fmt.Errorf("SNI %q: %w", sni, errSNIShape)
	}
	// TrustDomainFromString also takes a "spiffe://" URI; an SNI holds a
	// bare name only.
	if strings.ContainsAny(parts[4], ":/") {
		return Target{}, fmt.Errorf("SNI %q: trust domain %q is not a bare name", sni, parts[4])
	}
	td, err := spiffeid.TrustDomainFromString(parts[4])
	if err != nil {
		return Target{}, fmt.Errorf("SNI %q: trust domain: %w", sni, err)
	}
	return Target{Service: spec.Key{Namespace: parts[2], Name: parts[1]}, Port: int32(port), TrustDomain: td}, nil
}
