package smi

import (
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// SourceTrustDomainsAnnotation on a TrafficTarget admits callers from linked
// clusters (multi-cluster contract): each ServiceAccount source is allowed
// in the listed trust domains too, e.g. "east.causeway.local,other.td" lets
// spiffe://east.causeway.local/ns/<ns>/sa/<sa> in beside the local
// identity. A TrafficTarget is otherwise local: SMI names service accounts,
// not trust domains, and a remote cluster's identities must not be allowed
// by accident because a namespace and account name happen to match.
const SourceTrustDomainsAnnotation = "causeway.dev/source-trust-domains"

// sourceTrustDomains reads the annotation from the document's metadata: a
// comma-separated list, blanks around entries ignored. A value that is not a
// string, or an entry that is not a trust domain name, is an error on the
// annotation, which leaves the TrafficTarget out.
func (d *doc) sourceTrustDomains() []spiffeid.TrustDomain {
	v, ok := lookup(d.tree, "metadata", "annotations", SourceTrustDomainsAnnotation)
	if !ok {
		return nil
	}
	field := fmt.Sprintf("metadata.annotations[%q]", SourceTrustDomainsAnnotation)
	str, ok := v.(string)
	if !ok {
		d.errorf(field, "want a comma-separated list of trust domains, got %s", describe(v))
		return nil
	}
	var out []spiffeid.TrustDomain
	bad := false
	for i, part := range strings.Split(str, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		td, err := spiffeid.TrustDomainFromString(part)
		if err != nil || strings.Contains(part, "/") {
			// TrustDomainFromString also takes a whole SPIFFE ID and keeps
			// its trust domain; here that would hide a slip.
			d.errorf(field, "entry %d, %q: not a trust domain name (want e.g. east.causeway.local)", i, part)
			bad = true
			continue
		}
		out = append(out, td)
	}
	if len(out) == 0 && !bad {
		d.warnf(field, "lists no trust domain; only local callers are allowed")
	}
	return out
}
