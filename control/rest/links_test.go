package rest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/causeway-mesh/causeway/control/rest"
	"github.com/causeway-mesh/causeway/federation"
	"github.com/causeway-mesh/causeway/federation/federationtest"
	"github.com/causeway-mesh/causeway/identity/identitytest"
)

// TestLinksAPI peers two real federation sides through their REST APIs:
// a token from east, applied on west, listed on both, then removed.
func TestLinksAPI(t *testing.T) {
	east, west := federationtest.New(t, "east"), federationtest.New(t, "west")
	eastAPI := httptest.NewServer((&rest.API{Links: east.Links, Logger: identitytest.Quiet}).Handler())
	defer eastAPI.Close()
	westAPI := httptest.NewServer((&rest.API{Links: west.Links, Logger: identitytest.Quiet}).Handler())
	defer westAPI.Close()
	offAPI := httptest.NewServer((&rest.API{Logger: identitytest.Quiet}).Handler())
	defer offAPI.Close()

	call := func(t *testing.T, base, method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var token string
	steps := []struct {
		name       string
		base       func() string
		method     string
		path       string
		body       func() string
		code       int
		want       string // substring of the body
		afterwards func(t *testing.T, body string)
	}{
		{name: "token", base: func() string { return eastAPI.URL }, method: "POST", path: "/api/v1/links/tokens", body: func() string { return `{"ttl":"5m"}` },
			code: 201, want: `"token": "causeway-peer-v1.`, afterwards: func(t *testing.T, body string) {
				var r rest.TokenResponse
				if err := json.Unmarshal([]byte(body), &r); err != nil {
					t.Fatal(err)
				}
				token = r.Token
			}},
		{name: "token with a bad ttl", base: func() string { return eastAPI.URL }, method: "POST", path: "/api/v1/links/tokens", body: func() string { return `{"ttl":"forever"}` },
			code: 400, want: "ttl forever"},
		{name: "apply a malformed token", base: func() string { return westAPI.URL }, method: "POST", path: "/api/v1/links", body: func() string { return `{"token":"nope"}` },
			code: 400, want: "peering token: does not start with"},
		{name: "apply", base: func() string { return westAPI.URL }, method: "POST", path: "/api/v1/links", body: func() string { return `{"token":"` + token + `"}` },
			code: 201, want: `"cluster": "east"`},
		{name: "apply the same token again", base: func() string { return westAPI.URL }, method: "POST", path: "/api/v1/links", body: func() string { return `{"token":"` + token + `"}` },
			code: 502, want: "already used by cluster"},
		{name: "list on west", base: func() string { return westAPI.URL }, method: "GET", path: "/api/v1/links", body: func() string { return "" },
			code: 200, want: `"trustDomain": "east.causeway.local"`, afterwards: func(t *testing.T, body string) {
				var r struct{ Items []federation.Status }
				if err := json.Unmarshal([]byte(body), &r); err != nil {
					t.Fatal(err)
				}
				if len(r.Items) != 1 || r.Items[0].Cluster != "east" || len(r.Items[0].Dials) != 1 {
					t.Errorf("west's links = %+v", r.Items)
				}
			}},
		{name: "list on east", base: func() string { return eastAPI.URL }, method: "GET", path: "/api/v1/links", body: func() string { return "" },
			code: 200, want: `"cluster": "west"`},
		{name: "remove", base: func() string { return westAPI.URL }, method: "DELETE", path: "/api/v1/links/east", body: func() string { return "" }, code: 204},
		{name: "remove again", base: func() string { return westAPI.URL }, method: "DELETE", path: "/api/v1/links/east", body: func() string { return "" },
			code: 404, want: "no link to that cluster"},
		{name: "list after remove", base: func() string { return westAPI.URL }, method: "GET", path: "/api/v1/links", body: func() string { return "" },
			code: 200, want: `"items": []`},
		{name: "federation off", base: func() string { return offAPI.URL }, method: "GET", path: "/api/v1/links", body: func() string { return "" },
			code: 503, want: "federation is not enabled"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			code, body := call(t, st.base(), st.method, st.path, st.body())
			if code != st.code || !strings.Contains(body, st.want) {
				t.Fatalf("%s %s = %d %s, want %d containing %q", st.method, st.path, code, body, st.code, st.want)
			}
			if st.afterwards != nil {
				st.afterwards(t, body)
			}
		})
	}
}
