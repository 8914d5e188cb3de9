package smi

import (
	"fmt"
	"strings"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/spec"
)

// access.smi-spec.io/v1alpha4 is a draft (IdentityBinding, and TrafficTarget
// subjects that may name one) which smi-sdk-go v0.5.0, the only release,
// does not ship. These minimal types follow the draft's text
// (smi-spec apis/traffic-access/v1alpha4) and are read with the same strict
// decoder as the SDK's types.

type trafficTargetV1alpha4 struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              trafficTargetSpecV1alpha4 `json:"spec"`
}

type trafficTargetSpecV1alpha4 struct {
	Destination subjectV1alpha4                    `json:"destination"`
	Sources     []subjectV1alpha4                  `json:"sources,omitempty"`
	Rules       []accessv1alpha3.TrafficTargetRule `json:"rules,omitempty"`
}

// subjectV1alpha4 names a ServiceAccount or (with group access.smi-spec.io)
// an IdentityBinding.
type subjectV1alpha4 struct {
	Kind      string `json:"kind"`
	Group     string `json:"group,omitempty"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

type identityBindingDoc struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Schemes identitySchemes `json:"schemes"`
	} `json:"spec"`
}

type identitySchemes struct {
	PodLabelSelector *metav1.LabelSelector `json:"podLabelSelector,omitempty"`
	SpiffeIdentities []string              `json:"spiffeIdentities,omitempty"`
	ServiceAccount   string                `json:"serviceAccount,omitempty"`
}

// binding is a translated IdentityBinding: the identities it stands for.
type binding struct {
	ids []spiffeid.ID
}

func identityBindingV1alpha4(d *doc) {
	var ib identityBindingDoc
	if !d.decode(&ib) {
		return
	}
	k := d.key(d.o.Name)
	if d.o.Name == "" {
		d.errorf("metadata.name", "name is empty")
		return
	}
	if d.t.bindings[k] != nil {
		d.errorf("metadata.name", "duplicate IdentityBinding %s", k)
		return
	}
	s := ib.Spec.Schemes
	b := &binding{}
	if s.PodLabelSelector != nil {
		if s.ServiceAccount != "" {
			d.errorf("spec.schemes.podLabelSelector", "podLabelSelector and serviceAccount are mutually exclusive")
		} else {
			// Causeway proves identity with SPIFFE IDs of service accounts; a
			// pod selector does not name one.
			d.warnf("spec.schemes.podLabelSelector", "not supported (identities come from service accounts and SPIFFE IDs); ignored")
		}
	}
	if s.ServiceAccount != "" {
		// The draft: the service account "is implied to exist in the
		// IdentityBinding's namespace".
		id, err := spec.Identity(d.t.opts.TrustDomain, d.o.Namespace, s.ServiceAccount)
		if err != nil {
			d.errorf("spec.schemes.serviceAccount", "no valid SPIFFE ID: %v", err)
		} else {
			b.ids = append(b.ids, id)
		}
	}
	for i, raw := range s.SpiffeIdentities {
		// The draft writes them without the scheme ("cluster.local/ns/...").
		str := raw
		if !strings.HasPrefix(str, "spiffe://") {
			str = "spiffe://" + str
		}
		id, err := spiffeid.FromString(str)
		if err != nil {
			d.errorf(fmt.Sprintf("spec.schemes.spiffeIdentities[%d]", i), "invalid SPIFFE ID %q: %v", raw, err)
			continue
		}
		b.ids = append(b.ids, id)
	}
	if d.failed {
		return
	}
	if len(b.ids) == 0 {
		d.warnf("spec.schemes", "no identity: a TrafficTarget naming this binding matches nobody")
	}
	d.t.bindings[k] = b
}

// targetV1alpha4 is resolved after every document was read, so that the
// IdentityBindings it names may come later in the input.
func targetV1alpha4(d *doc) {
	var tt trafficTargetV1alpha4
	if !d.decode(&tt) {
		return
	}
	d.t.deferred = append(d.t.deferred, func() {
		s := tt.Spec
		sub := func(f string, x subjectV1alpha4) subject {
			return subject{field: f, kind: x.Kind, group: x.Group, name: x.Name, namespace: x.Namespace}
		}
		var srcs []subject
		for i, x := range s.Sources {
			srcs = append(srcs, sub(fmt.Sprintf("spec.sources[%d]", i), x))
		}
		d.target(sub("spec.destination", s.Destination), srcs, rulesOf(s.Rules), nil)
	})
}
