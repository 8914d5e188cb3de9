package identity

import (
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// WorkloadID returns spiffe://<td>/ns/<ns>/sa/<sa>, the identity Causeway gives
// a Kubernetes ServiceAccount (the same shape Istio and Linkerd use, so
// identities line up across meshes). ns must be a DNS-1123 label and sa a
// DNS-1123 subdomain, as Kubernetes requires of the objects they name.
func WorkloadID(td spiffeid.TrustDomain, ns, sa string) (spiffeid.ID, error) {
	if td.IsZero() {
		return spiffeid.ID{}, fmt.Errorf("workload identity %s/%s: trust domain is empty", ns, sa)
	}
	if err := validateLabel(ns); err != nil {
		return spiffeid.ID{}, fmt.Errorf("workload identity %s/%s: namespace: %w", ns, sa, err)
	}
	if err := validateSubdomain(sa); err != nil {
		return spiffeid.ID{}, fmt.Errorf("workload identity %s/%s: serviceAccount: %w", ns, sa, err)
	}
	return spiffeid.FromSegments(td, "ns", ns, "sa", sa)
}

// ParseWorkloadID is the inverse of WorkloadID: it returns the namespace and
// ServiceAccount of an ID of the form spiffe://<td>/ns/<ns>/sa/<sa>.
func ParseWorkloadID(id spiffeid.ID) (ns, sa string, err error) {
	parts := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" {
		return "", "", fmt.Errorf("SPIFFE ID %q: path is not /ns/<namespace>/sa/<serviceAccount>", id)
	}
	if err := validateLabel(parts[1]); err != nil {
		return "", "", fmt.Errorf("SPIFFE ID %q: namespace: %w", id, err)
	}
	if err := validateSubdomain(parts[3]); err != nil {
		return "", "", fmt.Errorf("SPIFFE ID %q: serviceAccount: %w", id, err)
	}
	return parts[1], parts[3], nil
}

// validateLabel checks a DNS-1123 label: 1-63 of [a-z0-9-], alphanumeric at both ends.
func validateLabel(s string) error {
	if len(s) == 0 || len(s) > 63 {
		return fmt.Errorf("%q must be 1-63 characters", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return fmt.Errorf("%q must be lowercase alphanumerics or '-', starting and ending alphanumeric", s)
		}
	}
	return nil
}

// validateSubdomain checks a DNS-1123 subdomain: dot-separated labels, at most 253 characters.
func validateSubdomain(s string) error {
	if len(s) == 0 || len(s) > 253 {
		return fmt.Errorf("%q must be 1-253 characters", s)
	}
	for _, l := range strings.Split(s, ".") {
		if err := validateLabel(l); err != nil {
			return fmt.Errorf("%q: %w", s, err)
		}
	}
	return nil
}
