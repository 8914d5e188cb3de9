package federation

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/spec"
)

// TestTokenRefused presents bad tokens to the issuer; each is refused with
// its own reason and no link appears on either side.
func TestTokenRefused(t *testing.T) {
	east := newSide(t, "east", sideOpts{})
	west := newSide(t, "west", sideOpts{})
	north := newSide(t, "north", sideOpts{})

	used, err := east.links.Generate(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := west.links.Apply(context.Background(), used); err != nil {
		t.Fatal(err)
	}
	expired, err := east.links.Generate(time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	good, err := east.links.Generate(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	wrongSecret := good
	wrongSecret.Secret = append([]byte(nil), good.Secret...)
	wrongSecret.Secret[0] ^= 1
	unknown := good
	unknown.ID = strings.Repeat("0", 32)
	otherIssuer, err := west.links.Generate(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	impostor := good // right secret, but the "issuer" at the address is not east
	impostor.Bundle = otherIssuer.Bundle
	impostor.TrustDomain = otherIssuer.TrustDomain
	unreachable := good
	unreachable.Addrs = []string{"127.0.0.1:1"} // tcpmux: nothing listens there
	time.Sleep(time.Until(expired.Expires) + 10*time.Millisecond)

	tests := []struct {
		name string
		tok  Token
		// skipLocal bypasses Apply's own expiry check, to prove the
		// issuer refuses a stolen expired token by itself.
		skipLocal bool
		want      string
	}{
		{"already used", used, false, "already used by cluster \"west\""},
		{"expired, caught locally", expired, false, "expired at"},
		{"expired, caught by the issuer", expired, true, "refused: peering token " + expired.ID + " expired at"},
		{"wrong secret", wrongSecret, false, "proof does not match"},
		{"unknown id", unknown, false, "is unknown here"},
		{"server not in the token's bundle", impostor, false, "x509svid"},
		{"issuer unreachable", unreachable, false, "127.0.0.1:1: rpc error: code = Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var err error
			if tt.skipLocal {
				_, err = north.links.connect(ctx, tt.tok.Addrs[0], tt.tok.Cluster, east.td, spiffeid.ID{}, mustTrust(t, tt.tok), &tt.tok)
			} else {
				_, err = north.links.Apply(ctx, tt.tok)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			t.Logf("refused: %v", err)
			if l := linkOf(north, "east"); l != nil {
				t.Errorf("north has a link after a refused token: %+v", l)
			}
			if l := linkOf(east, "north"); l != nil {
				t.Errorf("east has a link after a refused token: %+v", l)
			}
		})
	}
	// The good token still works once, after all those attempts.
	if _, err := north.links.Apply(context.Background(), good); err != nil {
		t.Fatalf("good token after failed attempts: %v", err)
	}
}

// TestOnlyThePeeredControlPlane: after peering, a workload of west's trust
// domain (its SVID chains to the same bundle) cannot speak for west.
func TestOnlyThePeeredControlPlane(t *testing.T) {
	east := newSide(t, "east", sideOpts{})
	west := newSide(t, "west", sideOpts{})
	link2(t, east, west)
	impostor := newSideWithCA(t, "west", west.ca, sideOpts{svidPath: "/ns/shop/sa/web"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := impostor.links.connect(ctx, east.addr, "east", east.td, spiffeid.ID{}, west.set, nil)
	want := "spiffe://west.causeway.local/ns/shop/sa/web is not spiffe://west.causeway.local/ns/causeway/sa/control"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("impostor connect: %v, want %q", err, want)
	}
	if l := linkOf(east, "west"); l == nil || l.State != spec.LinkActive {
		t.Errorf("east's link to west after the impostor: %+v", l)
	}
}

// TestStateFileErrors: a state file New cannot use is an error naming the
// file, the link and the field.
func TestStateFileErrors(t *testing.T) {
	east := newSide(t, "east", sideOpts{})
	bundle := strings.ReplaceAll(string(encodeRoots(east.ca.Bundle().X509Authorities())), "\n", "\\n")
	tests := []struct{ name, content, want string }{
		{"not JSON", "{", "unexpected end of JSON input"},
		{"bad cluster", `{"links":[{"cluster":"A_B","trustDomain":"east.local","peerID":"spiffe://east.local/x","bundle":"` + bundle + `"}]}`, "links[0] (A_B): cluster"},
		{"peer ID outside the trust domain", `{"links":[{"cluster":"east","trustDomain":"east.local","peerID":"spiffe://other.local/x","bundle":"` + bundle + `"}]}`, "links[0] (east): peerID"},
		{"no bundle", `{"links":[{"cluster":"east","trustDomain":"east.local","peerID":"spiffe://east.local/x","bundle":""}]}`, "links[0] (east): bundle: no PEM certificates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "links.json")
			if err := os.WriteFile(file, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			opts := east.links.opts
			opts.StateFile = file
			_, err := New(opts)
			if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error naming %s and %q", err, file, tt.want)
			}
		})
	}
}

func TestParseToken(t *testing.T) {
	east := newSide(t, "east", sideOpts{})
	tok, err := east.links.Generate(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	enc := tok.Encode()
	reencode := func(mod func(string) string) string {
		raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(enc, tokenPrefix))
		return tokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(mod(string(raw))))
	}
	tests := []struct {
		name, in, want string
	}{
		{"round trip", "  " + enc + "\n", ""},
		{"no prefix", strings.TrimPrefix(enc, tokenPrefix), "does not start with"},
		{"bad base64", tokenPrefix + "!!", "illegal base64"},
		{"unknown field", reencode(func(s string) string { return strings.Replace(s, `"cluster"`, `"extra":1,"cluster"`, 1) }), "unknown field"},
		{"bad cluster", reencode(func(s string) string { return strings.Replace(s, `"cluster":"east"`, `"cluster":"East_1"`, 1) }), "cluster:"},
		{"bad trust domain", reencode(func(s string) string {
			return strings.Replace(s, `"east.causeway.local"`, `"EAST"`, 1)
		}), "trustDomain"},
		{"no bundle", reencode(func(s string) string {
			i := strings.Index(s, `"bundle":"`) + len(`"bundle":"`)
			j := strings.Index(s[i:], `"`)
			return s[:i] + s[i+j:]
		}), "bundle: no PEM certificates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseToken(tt.in)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got.Encode() != enc || !got.Expires.Equal(tok.Expires) {
					t.Errorf("round trip changed the token")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// FuzzParseToken: the parser never panics, and whatever it accepts
// re-encodes to a token that parses to the same thing.
func FuzzParseToken(f *testing.F) {
	f.Add(tokenPrefix + "e30")
	f.Add(tokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(`{"cluster":"east","trustDomain":"east.local","addrs":["127.0.0.1:1"],"bundle":"-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n","id":"00000000000000000000000000000000","secret":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","expires":"2030-01-01T00:00:00Z"}`)))
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		again, err := ParseToken(tok.Encode())
		if err != nil {
			t.Fatalf("re-encoded token does not parse: %v", err)
		}
		if again.Encode() != tok.Encode() {
			t.Fatalf("round trip changed the token")
		}
	})
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	const base, max = 100 * time.Millisecond, time.Second
	delay := base
	for i, want := range []time.Duration{200, 400, 800, 1000, 1000} {
		waits := map[time.Duration]bool{}
		for range 50 {
			w, _ := backoff(delay, max)
			if w < delay/2 || w >= delay*3/2 {
				t.Fatalf("attempt %d: wait %s outside [%s, %s)", i, w, delay/2, delay*3/2)
			}
			waits[w] = true
		}
		if len(waits) < 10 {
			t.Errorf("attempt %d: only %d distinct waits in 50: not jittered", i, len(waits))
		}
		_, delay = backoff(delay, max)
		if delay != want*time.Millisecond {
			t.Errorf("attempt %d: next delay %s, want %s", i, delay, want*time.Millisecond)
		}
	}
}
