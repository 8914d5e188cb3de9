package gateway_test

import (
	"testing"

	"github.com/causeway-mesh/causeway/gateway"
)

func TestParseSNI(t *testing.T) {
	t.Parallel()
	cases := []struct {
		sni     string
		want    string // Target.String(); "" = an error
		svc     string
		port    int32
		trustDm string
	}{
		{sni: "80.books.shop.svc.east.test", want: "80.books.shop.svc.east.test", svc: "shop/books", port: 80, trustDm: "east.test"},
		{sni: "65535.a.b.svc.td", want: "65535.a.b.svc.td", svc: "b/a", port: 65535, trustDm: "td"},
		{sni: "9090.books-v2.prod-1.svc.cluster.local", want: "9090.books-v2.prod-1.svc.cluster.local", svc: "prod-1/books-v2", port: 9090, trustDm: "cluster.local"},
		{sni: ""},
		{sni: "books.example.com"},
		{sni: "80.books.shop.svc"},
		{sni: "80.books.shop.svx.east.test"},
		{sni: "0.books.shop.svc.east.test"},
		{sni: "080.books.shop.svc.east.test"},
		{sni: "65536.books.shop.svc.east.test"},
		{sni: "-1.books.shop.svc.east.test"},
		{sni: "80..shop.svc.east.test"},
		{sni: "80.books..svc.east.test"},
		{sni: "80.books.shop.svc."},
		{sni: "80.books.shop.svc.East.Test"},
		{sni: "80.books.shop.svc.spiffe://east.test"},
	}
	for _, tc := range cases {
		t.Run(tc.sni, func(t *testing.T) {
			t.Parallel()
			got, err := gateway.ParseSNI(tc.sni)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("ParseSNI(%q) = %+v, want an error", tc.sni, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSNI(%q): %v", tc.sni, err)
			}
			if got.String() != tc.want || got.Service.String() != tc.svc || got.Port != tc.port || got.TrustDomain.Name() != tc.trustDm {
				t.Fatalf("ParseSNI(%q) = %+v", tc.sni, got)
			}
		})
	}
}

// FuzzParseSNI: whatever parses renders back to the same SNI.
func FuzzParseSNI(f *testing.F) {
	for _, s := range []string{"80.books.shop.svc.east.test", "1.a.b.svc.c", "books.example.com", "80.a.b.svc.spiffe://x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sni string) {
		got, err := gateway.ParseSNI(sni)
		if err != nil {
			return
		}
		if got.String() != sni {
			t.Fatalf("ParseSNI(%q).String() = %q", sni, got.String())
		}
		again, err := gateway.ParseSNI(got.String())
		if err != nil || again != got {
			t.Fatalf("round trip of %q: %+v, %v", sni, again, err)
		}
	})
}
