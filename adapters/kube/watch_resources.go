package kube

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Resource is one kind the Watcher can keep an informer for.
type Resource struct {
	// Kind as written in manifests ("TrafficSplit").
	Kind string
	// GVR is what the informer lists and watches. For the SMI kinds this is
	// the CRD's storage version; objects are relabelled with the version they
	// were written in (see writtenVersion).
	GVR        schema.GroupVersionResource
	Namespaced bool
	// Status is set for kinds whose CRD has a status subresource with
	// conditions that Causeway writes (the Accepted condition).
	Status bool
}

func (r Resource) String() string {
	return fmt.Sprintf("%s (%s)", r.Kind, r.GVR)
}

// crd reports whether the kind is served through a CustomResourceDefinition
// and so read with the dynamic client.
func (r Resource) crd() bool {
	switch r.GVR.Group {
	case "", "apps", "discovery.k8s.io":
		return false
	}
	return true
}

func core(kind, resource string) Resource {
	return Resource{Kind: kind, GVR: schema.GroupVersionResource{Version: "v1", Resource: resource}, Namespaced: kind != "Namespace"}
}

func gvr(group, version, resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: version, Resource: resource}
}

// The kinds the Watcher knows. The SMI GVRs use the storage versions of the
// CRDs in deploy/crds.
var (
	Namespaces      = core("Namespace", "namespaces")
	Services        = core("Service", "services")
	ServiceAccounts = core("ServiceAccount", "serviceaccounts")
	Pods            = core("Pod", "pods")
	Endpoints       = core("Endpoints", "endpoints")
	EndpointSlices  = Resource{Kind: "EndpointSlice", GVR: gvr("discovery.k8s.io", "v1", "endpointslices"), Namespaced: true}
	Deployments     = Resource{Kind: "Deployment", GVR: gvr("apps", "v1", "deployments"), Namespaced: true}
	StatefulSets    = Resource{Kind: "StatefulSet", GVR: gvr("apps", "v1", "statefulsets"), Namespaced: true}
	DaemonSets      = Resource{Kind: "DaemonSet", GVR: gvr("apps", "v1", "daemonsets"), Namespaced: true}

	TrafficSplits    = Resource{Kind: "TrafficSplit", GVR: gvr("split.smi-spec.io", "v1alpha4", "trafficsplits"), Namespaced: true, Status: true}
	TrafficTargets   = Resource{Kind: "TrafficTarget", GVR: gvr("access.smi-spec.io", "v1alpha3", "traffictargets"), Namespaced: true, Status: true}
	IdentityBindings = Resource{Kind: "IdentityBinding", GVR: gvr("access.smi-spec.io", "v1alpha4", "identitybindings"), Namespaced: true, Status: true}
	HTTPRouteGroups  = Resource{Kind: "HTTPRouteGroup", GVR: gvr("specs.smi-spec.io", "v1alpha4", "httproutegroups"), Namespaced: true, Status: true}
	TCPRoutes        = Resource{Kind: "TCPRoute", GVR: gvr("specs.smi-spec.io", "v1alpha4", "tcproutes"), Namespaced: true, Status: true}
	UDPRoutes        = Resource{Kind: "UDPRoute", GVR: gvr("specs.smi-spec.io", "v1alpha4", "udproutes"), Namespaced: true, Status: true}

	MeshConfigs  = Resource{Kind: "MeshConfig", GVR: gvr("causeway.dev", "v1alpha1", "meshconfigs"), Status: true}
	Workloads    = Resource{Kind: "Workload", GVR: gvr("causeway.dev", "v1alpha1", "workloads"), Namespaced: true, Status: true}
	Clusters     = Resource{Kind: "Cluster", GVR: gvr("causeway.dev", "v1alpha1", "clusters"), Status: true}
	ClusterLinks = Resource{Kind: "ClusterLink", GVR: gvr("causeway.dev", "v1alpha1", "clusterlinks"), Namespaced: true, Status: true}

	// ServiceExports are MCS's (KEP-1645): one of the same namespace and
	// name exports a Service (translate_export.go). Their status belongs to
	// MCS controllers, so Causeway never writes it. A cluster without the
	// MCS CRD still works: the Watcher skips a kind the apiserver does not
	// serve, and the annotation keeps exporting.
	ServiceExports = Resource{Kind: "ServiceExport", GVR: gvr(GroupMCS, "v1alpha1", "serviceexports"), Namespaced: true}
)

// DefaultResources is what a control plane reading a cluster needs: the
// core kinds Translate reads (EndpointSlices rather than the legacy
// Endpoints), every SMI kind, and MCS ServiceExports.
func DefaultResources() []Resource {
	return []Resource{
		Namespaces, Services, ServiceAccounts, Pods, EndpointSlices,
		Deployments, StatefulSets, DaemonSets,
		TrafficSplits, TrafficTargets, IdentityBindings, HTTPRouteGroups, TCPRoutes, UDPRoutes,
		ServiceExports,
	}
}
