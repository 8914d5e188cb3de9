package kubetest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestConfig starts the shared apiserver and checks that the config reaches
// it as an admin over verified TLS, and that it is the version the script
// builds.
func TestConfig(t *testing.T) {
	cfg := Config(t)
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := kc.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != Version {
		t.Errorf("server version %q, want %q", v.GitVersion, Version)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kubetest-smoke"}}
	if _, err := kc.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("apiserver ready in %v", shared.env.Ready.Round(time.Millisecond))
}

func TestBinariesMissing(t *testing.T) {
	t.Setenv("KUBE_APISERVER_BIN", "/nonexistent/kube-apiserver")
	_, _, err := Binaries()
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/kube-apiserver") || !strings.Contains(err.Error(), "scripts/kube-apiserver.sh") {
		t.Errorf("Binaries() error = %v, want one naming the path and the script", err)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		in      string
		kinds   []string
		indexes []int
		err     string
	}{
		{"several documents, empty ones skipped", "kind: A\n---\n---\nkind: B\n", []string{"A", "B"}, []int{0, 1}, ""},
		{"anchors expand", "kind: A\nspec: &s {x: 1}\nother: *s\n", []string{"A"}, []int{0}, ""},
		{"JSON", `{"kind": "A"}`, []string{"A"}, []int{0}, ""},
		{"a syntax error names the document", "kind: A\n---\nkind: [B\n", nil, nil, "t.yaml: document 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			docs, err := Parse("t.yaml", []byte(c.in))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(docs) != len(c.kinds) {
				t.Fatalf("got %d docs, want %d", len(docs), len(c.kinds))
			}
			for i, d := range docs {
				if d.Obj.GetKind() != c.kinds[i] || d.Index != c.indexes[i] {
					t.Errorf("doc %d = %s #%d, want %s #%d", i, d.Obj.GetKind(), d.Index, c.kinds[i], c.indexes[i])
				}
			}
			if c.name == "anchors expand" && docs[0].Obj.Object["other"].(map[string]any)["x"] == nil {
				t.Errorf("alias not expanded: %v", docs[0].Obj.Object)
			}
		})
	}
}
