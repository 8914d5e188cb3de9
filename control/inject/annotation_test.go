package inject

import (
	"testing"

	"github.com/causeway-mesh/causeway/adapters/kube"
)

// The translator gives endpoints an identity only for pods carrying the
// annotation the injector sets; the two names must not drift apart.
func TestInjectedAnnotationMatchesTranslator(t *testing.T) {
	if AnnotationInjected != kube.InjectedAnnotation {
		t.Fatalf("injector sets %q, adapters/kube looks for %q", AnnotationInjected, kube.InjectedAnnotation)
	}
}
