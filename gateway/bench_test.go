package gateway_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/causeway-mesh/causeway/spec"
)

// BenchmarkHop: one HTTP/1.1 request, keep-alive, from a west client
// sidecar to east's demo app behind east's destination sidecar, either
// directly (mTLS to the destination) or through east's gateway (outer mTLS
// to the gateway, inner mTLS to the destination). The difference is the
// gateway hop's cost: one more TLS layer on the client, the gateway's
// decrypt/re-encrypt, one more loopback hop.
//
//	go test -run XXX -bench Hop -benchmem -count 6 ./gateway/
func BenchmarkHop(b *testing.B) {
	m := newMulti(b, 1)
	web := m.caller(b, m.west, m.westFed, "web")
	for _, tc := range []struct {
		name string
		svc  spec.Key
	}{{"direct", directK}, {"gateway", importK}} {
		b.Run(tc.name, func(b *testing.B) {
			url := "http://" + web.FixedAddr(tc.svc.String(), portHTTP).String() + "/books"
			c := httpClient(b)
			get(b, c, url) // warm the pools: the handshakes are not what is measured
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				resp, err := c.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}

// BenchmarkTCPBulk: 1 MiB echoed over one TCP flow per iteration, west
// client sidecar to east's TCP echo app, directly or through the gateway
// (each flow is a new connection: dial, both handshakes, relay).
func BenchmarkTCPBulk(b *testing.B) {
	m := newMulti(b, 1)
	web := m.caller(b, m.west, m.westFed, "web")
	msg := make([]byte, 1<<20)
	for _, tc := range []struct {
		name string
		svc  spec.Key
	}{{"direct", directK}, {"gateway", importK}} {
		b.Run(tc.name, func(b *testing.B) {
			addr := web.FixedAddr(tc.svc.String(), portTCP).String()
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if err := echoOnce(addr, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
