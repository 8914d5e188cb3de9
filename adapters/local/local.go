package local

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/spec"
)

// Group is the API group of the local-mode kinds; Version the only version.
const (
	Group      = "causeway.dev"
	Version    = "v1alpha1"
	APIVersion = Group + "/" + Version
)

// Kinds this package reads, in the order Decode reads them (the Mesh first:
// its trust domain names the workloads). MeshConfig is the name
// deploy/crds gives the Mesh kind; both are read, with the same fields.
var Kinds = []string{"Mesh", "MeshConfig", "Workload", "Cluster", "ClusterLink"}

// Options tune Decode and Translate.
type Options struct {
	// TrustDomain of workload identities when no Mesh sets one; "" means
	// "cluster.local".
	TrustDomain string
	// DefaultNamespace for documents that name none; "" means "default".
	DefaultNamespace string
}

// Workload is one local process behind a sidecar.
type Workload struct {
	Key            spec.Key
	ServiceAccount string
	// Service is the Service (same namespace) the workload backs; "" for a
	// workload that only calls out.
	Service string
	// Port is where the application listens on loopback; 0 with no Service.
	Port int32
	// Command is the application to run; empty when it is started by hand.
	Command []string
	// Env is added to the command's environment, in order; a value may use
	// $(VAR) of the variables before it, as in a Kubernetes container.
	Env      []EnvVar
	Outbound Outbound
	// Identity is spiffe://<td>/ns/<ns>/sa/<serviceAccount>.
	Identity spiffeid.ID
	Origin   spec.Origin
}

// ServiceKey is the key of the Service the workload backs (zero if none).
func (w *Workload) ServiceKey() spec.Key {
	if w.Service == "" {
		return spec.Key{}
	}
	return spec.Key{Namespace: w.Key.Namespace, Name: w.Service}
}

// EnvVar is one environment variable of a Workload's command.
type EnvVar struct {
	Name  string
	Value string
}

// Outbound is how the workload's application reaches the mesh.
type Outbound struct {
	// HTTPProxyPort is the sidecar's HTTP forward proxy on loopback (the
	// app's HTTP_PROXY); 0 means none.
	HTTPProxyPort int32
	Upstreams     []Upstream
}

// Upstream is a fixed loopback port the sidecar binds for one service port,
// for applications that cannot use a proxy (databases, raw TCP).
type Upstream struct {
	Service   spec.Key
	Port      int32
	LocalPort int32
}

// Mesh holds mesh-wide settings; at most one per folder.
type Mesh struct {
	Mode        spec.Mode
	TrustDomain string
	Origin      spec.Origin
}

// Cluster is one cluster of a multi-cluster folder: its own trust domain,
// the port of its east-west gateway and of its REST API (0: a free port).
type Cluster struct {
	Name        string
	TrustDomain string
	GatewayPort int32
	AdminPort   int32
	Origin      spec.Origin
}

// ClusterLink links clusters: every pair of them is peered at start.
type ClusterLink struct {
	Name     string
	Clusters []string
	Origin   spec.Origin
}

// Result is what Decode read, sorted by key so it is deterministic.
type Result struct {
	Mesh         *Mesh
	Workloads    []Workload
	Clusters     []Cluster
	ClusterLinks []ClusterLink
}

// TrustDomain is the Mesh's trust domain, else def.
func (r *Result) TrustDomain(def string) string {
	if r.Mesh != nil && r.Mesh.TrustDomain != "" {
		return r.Mesh.TrustDomain
	}
	return def
}

// Workload returns the workload with key k, or nil.
func (r *Result) Workload(k spec.Key) *Workload {
	for i := range r.Workloads {
		if r.Workloads[i].Key == k {
			return &r.Workloads[i]
		}
	}
	return nil
}

// Handles reports whether o is of the causeway.dev group, any version: other
// versions are reported as unsupported rather than listed as ignored.
func Handles(o *adapters.Object) bool { return o.Group() == Group }

// Translate is Decode for adapters/pipeline: the fragment carries the Mesh's
// mode and trust domain; workloads become model objects only through Attach.
func Translate(objs []adapters.Object, opts Options) (spec.Input, spec.Diagnostics) {
	r, diags := Decode(objs, opts)
	var in spec.Input
	if r.Mesh != nil {
		in.Mode, in.TrustDomain = r.Mesh.Mode, r.Mesh.TrustDomain
	}
	return in, diags
}

// Decode reads every local-mode object among objs (others are skipped). A
// bad object yields diagnostics and is left out; the rest is still read.
func Decode(objs []adapters.Object, opts Options) (Result, spec.Diagnostics) {
	opts.TrustDomain = cmp.Or(opts.TrustDomain, "cluster.local")
	opts.DefaultNamespace = cmp.Or(opts.DefaultNamespace, "default")
	d := decoder{opts: opts}
	// The Mesh is read first: its trust domain names every workload.
	for _, kind := range Kinds {
		for i := range objs {
			if o := &objs[i]; Handles(o) && o.Kind == kind {
				d.object(o)
			}
		}
	}
	for i := range objs {
		if o := &objs[i]; Handles(o) && !slices.Contains(Kinds, o.Kind) {
			d.diags.Errorf(o.Source, o.SpecObject(), "kind", "unknown kind %q in %s (want one of %s)", o.Kind, o.APIVersion, strings.Join(Kinds, ", "))
		}
	}
	slices.SortFunc(d.r.Workloads, func(a, b Workload) int { return cmp.Compare(a.Key.String(), b.Key.String()) })
	d.checkPorts()
	d.checkLinks()
	slices.SortFunc(d.r.Clusters, func(a, b Cluster) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(d.r.ClusterLinks, func(a, b ClusterLink) int { return cmp.Compare(a.Name, b.Name) })
	d.diags.Sort()
	return d.r, d.diags
}

type decoder struct {
	opts  Options
	r     Result
	diags spec.Diagnostics
}

// Wire shapes. metav1.ObjectMeta accepts every metadata field a Kubernetes
// object may carry (labels, annotations), so the folder can be applied to a
// cluster with the CRDs of deploy/ unchanged.
type (
	workloadDoc struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			ServiceAccount string   `json:"serviceAccount"`
			Service        string   `json:"service,omitempty"`
			Port           int32    `json:"port,omitempty"`
			Command        []string `json:"command,omitempty"`
			Env            []struct {
				Name  string `json:"name"`
				Value string `json:"value,omitempty"`
			} `json:"env,omitempty"`
			Outbound struct {
				HTTPProxyPort int32 `json:"httpProxyPort,omitempty"`
				Upstreams     []struct {
					Service   string `json:"service"`
					Port      int32  `json:"port"`
					LocalPort int32  `json:"localPort"`
				} `json:"upstreams,omitempty"`
			} `json:"outbound,omitzero"`
		} `json:"spec"`
	}
	meshDoc struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			Mode        string `json:"mode,omitempty"`
			TrustDomain string `json:"trustDomain,omitempty"`
		} `json:"spec"`
	}
	clusterDoc struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			Name        string `json:"name,omitempty"`
			TrustDomain string `json:"trustDomain"`
			GatewayPort int32  `json:"gatewayPort,omitempty"`
			AdminPort   int32  `json:"adminPort,omitempty"`
		} `json:"spec"`
	}
	clusterLinkDoc struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			Clusters []string `json:"clusters"`
		} `json:"spec"`
	}
)

// meta is the object being read, for diagnostics.
type meta struct {
	src spec.Source
	obj spec.Object
}

func (m meta) origin() spec.Origin { return spec.Origin{Source: m.src, Object: m.obj} }

func (d *decoder) errorf(m meta, field, format string, args ...any) {
	d.diags.Errorf(m.src, m.obj, field, format, args...)
}

func (d *decoder) warnf(m meta, field, format string, args ...any) {
	d.diags.Warnf(m.src, m.obj, field, format, args...)
}

func (d *decoder) object(o *adapters.Object) {
	m := meta{src: o.Source, obj: o.SpecObject()}
	namespaced := o.Kind == "Workload"
	if namespaced {
		m.obj.Namespace = cmp.Or(o.Namespace, d.opts.DefaultNamespace)
	} else {
		m.obj.Namespace = ""
	}
	if o.Version() != Version {
		d.errorf(m, "apiVersion", "%s %s is not supported; use %s", o.APIVersion, o.Kind, APIVersion)
		return
	}
	ok := true
	if errs := validation.IsDNS1123Subdomain(m.obj.Name); len(errs) > 0 {
		d.errorf(m, "metadata.name", "invalid name %q: %s", m.obj.Name, errs[0])
		ok = false
	}
	if namespaced {
		if errs := validation.IsDNS1123Label(m.obj.Namespace); len(errs) > 0 {
			d.errorf(m, "metadata.namespace", "invalid namespace %q: %s", m.obj.Namespace, errs[0])
			ok = false
		}
	}
	if !ok {
		return
	}
	switch o.Kind {
	case "Workload":
		var doc workloadDoc
		if d.decode(m, o.Raw, &doc) {
			d.workload(m, &doc)
		}
	case "Mesh", "MeshConfig":
		var doc meshDoc
		if d.decode(m, o.Raw, &doc) {
			d.mesh(m, &doc)
		}
	case "Cluster":
		var doc clusterDoc
		if d.decode(m, o.Raw, &doc) {
			d.cluster(m, &doc)
		}
	case "ClusterLink":
		var doc clusterLinkDoc
		if d.decode(m, o.Raw, &doc) {
			d.clusterLink(m, &doc)
		}
	}
}

// typeErrorText matches sigs.k8s.io/json's type error, which keeps its type
// internal: "json: cannot unmarshal string into Go struct field
// workloadDoc.spec.port of type int32".
var typeErrorText = regexp.MustCompile(`^json: cannot unmarshal (.+) into Go struct field [A-Za-z0-9_]*\.(\S+) of type (\S+)$`)

// decode unmarshals strictly; every unknown or duplicate field is reported
// with its path, and the object is left out if there was any.
func (d *decoder) decode(m meta, raw []byte, v any) bool {
	strict, err := kjson.UnmarshalStrict(raw, v)
	if err != nil {
		if g := typeErrorText.FindStringSubmatch(err.Error()); g != nil {
			d.errorf(m, g[2], "expected %s, found %s", g[3], g[1])
		} else {
			d.errorf(m, "", "%s", strings.TrimPrefix(err.Error(), "json: "))
		}
		return false
	}
	for _, e := range strict {
		var fe kjson.FieldError
		if errors.As(e, &fe) {
			what := "unknown field"
			if strings.Contains(e.Error(), "duplicate field") {
				what = "duplicate field"
			}
			d.errorf(m, fe.FieldPath(), "%s", what)
			continue
		}
		d.errorf(m, "", "%v", e)
	}
	return len(strict) == 0
}

func (d *decoder) port(m meta, field string, p int32, required bool) bool {
	switch {
	case p == 0 && required:
		d.errorf(m, field, "required")
		return false
	case p < 0 || p > 65535:
		d.errorf(m, field, "port %d out of range 1-65535", p)
		return false
	}
	return true
}

func (d *decoder) workload(m meta, doc *workloadDoc) {
	s := &doc.Spec
	w := Workload{Key: spec.Key{Namespace: m.obj.Namespace, Name: m.obj.Name}, ServiceAccount: s.ServiceAccount,
		Service: s.Service, Port: s.Port, Command: s.Command, Origin: m.origin()}
	ok := true
	if s.ServiceAccount == "" {
		d.errorf(m, "spec.serviceAccount", "required")
		ok = false
	} else if errs := validation.IsDNS1123Subdomain(s.ServiceAccount); len(errs) > 0 {
		d.errorf(m, "spec.serviceAccount", "invalid name %q: %s", s.ServiceAccount, errs[0])
		ok = false
	}
	if s.Service != "" {
		if errs := validation.IsDNS1123Label(s.Service); len(errs) > 0 {
			d.errorf(m, "spec.service", "invalid Service name %q: %s", s.Service, errs[0])
			ok = false
		}
		ok = d.port(m, "spec.port", s.Port, true) && ok
	} else if s.Port != 0 {
		d.errorf(m, "spec.port", "set without spec.service: a port is served only for a Service")
		ok = false
	}
	for i, a := range s.Command {
		if a == "" && i == 0 {
			d.errorf(m, "spec.command[0]", "empty program name")
			ok = false
		}
	}
	for i, e := range s.Env {
		f := fmt.Sprintf("spec.env[%d].name", i)
		if errs := validation.IsEnvVarName(e.Name); len(errs) > 0 {
			d.errorf(m, f, "invalid variable name %q: %s", e.Name, errs[0])
			ok = false
		} else if j := slices.IndexFunc(w.Env, func(x EnvVar) bool { return x.Name == e.Name }); j >= 0 {
			d.errorf(m, f, "%s is already set by spec.env[%d]", e.Name, j)
			ok = false
		}
		w.Env = append(w.Env, EnvVar{Name: e.Name, Value: e.Value})
	}
	ok = d.port(m, "spec.outbound.httpProxyPort", s.Outbound.HTTPProxyPort, false) && ok
	w.Outbound.HTTPProxyPort = s.Outbound.HTTPProxyPort
	for i, u := range s.Outbound.Upstreams {
		f := fmt.Sprintf("spec.outbound.upstreams[%d]", i)
		key, err := ParseServiceName(u.Service, w.Key.Namespace)
		if err != nil {
			d.errorf(m, f+".service", "%v", err)
			ok = false
		}
		ok = d.port(m, f+".port", u.Port, true) && ok
		ok = d.port(m, f+".localPort", u.LocalPort, true) && ok
		w.Outbound.Upstreams = append(w.Outbound.Upstreams, Upstream{Service: key, Port: u.Port, LocalPort: u.LocalPort})
	}
	td, err := spiffeid.TrustDomainFromString(d.r.TrustDomain(d.opts.TrustDomain))
	if err == nil && ok {
		w.Identity, err = spiffeid.FromSegments(td, "ns", w.Key.Namespace, "sa", w.ServiceAccount)
	}
	if err != nil {
		// The trust domain is reported on the Mesh; the workload is only
		// unusable.
		ok = false
	}
	if ok {
		d.r.Workloads = append(d.r.Workloads, w)
	}
}

// ParseServiceName reads an upstream's service as written in a Workload:
// "name.namespace" (the Kubernetes DNS form), or "name" for a service of ns.
func ParseServiceName(s, ns string) (spec.Key, error) {
	name, sns, dotted := strings.Cut(s, ".")
	if !dotted {
		sns = ns
	}
	if s == "" {
		return spec.Key{}, errors.New("required")
	}
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return spec.Key{}, fmt.Errorf("service %q: want name.namespace: %s", s, errs[0])
	}
	if errs := validation.IsDNS1123Label(sns); len(errs) > 0 {
		return spec.Key{}, fmt.Errorf("service %q: want name.namespace: %s", s, errs[0])
	}
	return spec.Key{Namespace: sns, Name: name}, nil
}

func (d *decoder) mesh(m meta, doc *meshDoc) {
	if d.r.Mesh != nil {
		d.errorf(m, "metadata.name", "a second Mesh: %s already sets the mesh's settings", d.r.Mesh.Origin.Object)
		return
	}
	mesh := Mesh{Mode: spec.Mode(cmp.Or(doc.Spec.Mode, string(spec.ModeStrict))), TrustDomain: doc.Spec.TrustDomain, Origin: m.origin()}
	ok := true
	if mesh.Mode != spec.ModeStrict && mesh.Mode != spec.ModePermissive {
		d.errorf(m, "spec.mode", "unknown mode %q (want strict or permissive)", mesh.Mode)
		ok = false
	}
	if mesh.TrustDomain != "" {
		if _, err := spiffeid.TrustDomainFromString(mesh.TrustDomain); err != nil {
			d.errorf(m, "spec.trustDomain", "%v", err)
			ok = false
		}
	}
	if ok {
		d.r.Mesh = &mesh
	}
}

func (d *decoder) cluster(m meta, doc *clusterDoc) {
	c := Cluster{Name: cmp.Or(doc.Spec.Name, m.obj.Name), TrustDomain: doc.Spec.TrustDomain,
		GatewayPort: doc.Spec.GatewayPort, AdminPort: doc.Spec.AdminPort, Origin: m.origin()}
	ok := true
	if errs := validation.IsDNS1123Label(c.Name); len(errs) > 0 {
		d.errorf(m, "spec.name", "invalid cluster name %q: %s", c.Name, errs[0])
		ok = false
	}
	if c.TrustDomain == "" {
		d.errorf(m, "spec.trustDomain", "required")
		ok = false
	} else if _, err := spiffeid.TrustDomainFromString(c.TrustDomain); err != nil {
		d.errorf(m, "spec.trustDomain", "%v", err)
		ok = false
	}
	ok = d.port(m, "spec.gatewayPort", c.GatewayPort, false) && ok
	ok = d.port(m, "spec.adminPort", c.AdminPort, false) && ok
	for _, o := range d.r.Clusters {
		if o.Name == c.Name {
			d.errorf(m, "spec.name", "cluster %q is already defined by %s", c.Name, o.Origin.Object)
			ok = false
		}
	}
	if ok {
		d.r.Clusters = append(d.r.Clusters, c)
	}
}

func (d *decoder) clusterLink(m meta, doc *clusterLinkDoc) {
	l := ClusterLink{Name: m.obj.Name, Clusters: doc.Spec.Clusters, Origin: m.origin()}
	ok := true
	if len(l.Clusters) < 2 {
		d.errorf(m, "spec.clusters", "a link needs at least two clusters, got %d", len(l.Clusters))
		ok = false
	}
	for i, c := range l.Clusters {
		if errs := validation.IsDNS1123Label(c); len(errs) > 0 {
			d.errorf(m, fmt.Sprintf("spec.clusters[%d]", i), "invalid cluster name %q: %s", c, errs[0])
			ok = false
		} else if slices.Index(l.Clusters, c) < i {
			d.errorf(m, fmt.Sprintf("spec.clusters[%d]", i), "cluster %q listed twice", c)
			ok = false
		}
	}
	if ok {
		d.r.ClusterLinks = append(d.r.ClusterLinks, l)
	}
}

// checkLinks warns about links to clusters no Cluster object defines; they
// may be defined in another folder.
func (d *decoder) checkLinks() {
	for _, l := range d.r.ClusterLinks {
		for i, c := range l.Clusters {
			if !slices.ContainsFunc(d.r.Clusters, func(x Cluster) bool { return x.Name == c }) {
				d.diags.Warnf(l.Origin.Source, l.Origin.Object, fmt.Sprintf("spec.clusters[%d]", i), "cluster %q is not defined by any Cluster among the inputs", c)
			}
		}
	}
}

// checkPorts reports two workloads (or two uses in one) claiming the same
// loopback port: every local process shares 127.0.0.1, so the second would
// fail to bind at run time; better said here, with both names.
func (d *decoder) checkPorts() {
	type use struct {
		w     *Workload
		field string
	}
	seen := map[int32]use{}
	var bad []int
	for i := range d.r.Workloads {
		w := &d.r.Workloads[i]
		uses := []use{}
		if w.Port != 0 {
			uses = append(uses, use{w, "spec.port"})
		}
		if w.Outbound.HTTPProxyPort != 0 {
			uses = append(uses, use{w, "spec.outbound.httpProxyPort"})
		}
		ports := []int32{w.Port, w.Outbound.HTTPProxyPort}
		ports = slices.DeleteFunc(ports, func(p int32) bool { return p == 0 })
		for j, u := range w.Outbound.Upstreams {
			uses = append(uses, use{w, fmt.Sprintf("spec.outbound.upstreams[%d].localPort", j)})
			ports = append(ports, u.LocalPort)
		}
		for k, p := range ports {
			if first, dup := seen[p]; dup {
				o := w.Origin
				d.diags.Errorf(o.Source, o.Object, uses[k].field, "loopback port %d is already used by %s %s", p, first.w.Origin.Object, first.field)
				if !slices.Contains(bad, i) {
					bad = append(bad, i)
				}
				continue
			}
			seen[p] = uses[k]
		}
	}
	// A workload whose port clashes is left out: starting it would fail.
	for k := len(bad) - 1; k >= 0; k-- {
		d.r.Workloads = slices.Delete(d.r.Workloads, bad[k], bad[k]+1)
	}
}
