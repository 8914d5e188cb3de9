package proxy_test

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"go.uber.org/goleak"

	"github.com/causeway-mesh/causeway/adapters/manifest"
	"github.com/causeway-mesh/causeway/adapters/smi"
	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// proxy, app and client a test starts must be gone when it ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startProxy starts a proxy and closes it at cleanup.
func startProxy(t *testing.T, b *proxy.Bootstrap) *proxy.Proxy {
	t.Helper()
	return startProxy2(t, b, proxy.Options{})
}

// startProxy2 starts a proxy with options (mTLS sources) and closes it at
// cleanup.
func startProxy2(t *testing.T, b *proxy.Bootstrap, opts proxy.Options) *proxy.Proxy {
	t.Helper()
	if err := b.Validate(); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	opts.Logger = quiet
	p := proxy.New(b, opts)
	if err := p.Start(); err != nil {
		t.Fatalf("start proxy: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// smiInput translates SMI YAML documents into model input.
func smiInput(t *testing.T, yaml string) spec.Input {
	t.Helper()
	objs, diags := manifest.Parse("test.yaml", []byte(yaml))
	if diags.HasErrors() {
		t.Fatalf("manifest: %v", diags.Err())
	}
	in, diags := smi.Translate(objs, smi.Options{})
	if diags.HasErrors() {
		t.Fatalf("smi: %v", diags.Err())
	}
	return in
}

// client is an HTTP/1.1 keep-alive client closed at cleanup.
func client(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// get sends a request and returns status, the backend's X-Demo-Name, and
// the body.
func do(t *testing.T, c *http.Client, req *http.Request) (int, string, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Demo-Name"), string(b)
}

func mustReq(t *testing.T, method, url string, hdr map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return req
}

var _ = proxytest.K
