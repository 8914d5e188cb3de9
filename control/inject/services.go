package inject

import (
	"context"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// KubeServices resolves a pod's Services by listing the Services of its
// namespace and matching their selectors against the pod's labels, as the
// EndpointSlice controller will. It sees only the Services that exist at
// admission: one created later is not known to the proxy until the pod is
// recreated (or the causeway.dev/services annotation names it).
type KubeServices struct {
	Client kubernetes.Interface
}

// PodServices implements ServiceResolver.
func (k KubeServices) PodServices(ctx context.Context, namespace string, podLabels map[string]string) ([]string, error) {
	list, err := k.Client.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range list.Items {
		// A Service without a selector has hand-made endpoints; it does not
		// select pods.
		if len(s.Spec.Selector) == 0 {
			continue
		}
		if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(podLabels)) {
			out = append(out, namespace+"/"+s.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// KubeNamespaces reads Namespace labels from the apiserver.
type KubeNamespaces struct {
	Client kubernetes.Interface
}

// NamespaceLabels implements NamespaceReader.
func (k KubeNamespaces) NamespaceLabels(ctx context.Context, namespace string) (map[string]string, error) {
	ns, err := k.Client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return ns.Labels, nil
}
