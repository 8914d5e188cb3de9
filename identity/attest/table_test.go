package attest

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("cluster.local")

func mustEntries(t *testing.T, lines ...string) []Entry {
	t.Helper()
	var out []Entry
	for _, l := range lines {
		e, err := ParseEntry(l)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestTableAttest(t *testing.T) {
	t.Parallel()
	tab, err := NewTable(td, mustEntries(t,
		"uid:1000=shop/web",
		"gid:2000=shop/batch",
		"exe:/usr/bin/orders=shop/orders",
		"uid:1000=shop/shadowed", // never reached: first match wins
	))
	if err != nil {
		t.Fatal(err)
	}
	tab.readExe = func(pid int32) (string, error) {
		if pid == 42 {
			return "/usr/bin/orders", nil
		}
		return "", os.ErrNotExist
	}
	tests := []struct {
		name   string
		caller Caller
		want   string // empty: ErrNoIdentity
	}{
		{"uid entry", Caller{UID: 1000, GID: 1, PID: 7}, "spiffe://cluster.local/ns/shop/sa/web"},
		{"gid entry", Caller{UID: 5, GID: 2000, PID: 7}, "spiffe://cluster.local/ns/shop/sa/batch"},
		{"exe entry", Caller{UID: 5, GID: 5, PID: 42}, "spiffe://cluster.local/ns/shop/sa/orders"},
		{"uid beats later entries", Caller{UID: 1000, GID: 2000, PID: 42}, "spiffe://cluster.local/ns/shop/sa/web"},
		{"unknown caller", Caller{UID: 5, GID: 5, PID: 7}, ""},
		{"exe entry, process gone after the read (pid may be recycled)", Caller{UID: 5, GID: 5, PID: 42, Alive: func() bool { return false }}, ""},
		{"exe entry, process still alive", Caller{UID: 5, GID: 5, PID: 42, Alive: func() bool { return true }}, "spiffe://cluster.local/ns/shop/sa/orders"},
		{"root is not special", Caller{UID: 0, GID: 0, PID: 1}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, err := tab.Attest(context.Background(), tt.caller)
			if tt.want == "" {
				if !errors.Is(err, ErrNoIdentity) {
					t.Fatalf("Attest = %v, %v; want ErrNoIdentity", id, err)
				}
				return
			}
			if err != nil || id.String() != tt.want {
				t.Fatalf("Attest = %v, %v; want %s", id, err, tt.want)
			}
		})
	}
}

func TestParseEntry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    string // canonical String(); empty means an error is expected
		errPart string
	}{
		{"uid:1000=shop/web", "uid:1000=shop/web", ""},
		{"unix:uid:0=kube-system/coredns", "uid:0=kube-system/coredns", ""},
		{"gid:4294967295=a/b.c", "gid:4294967295=a/b.c", ""},
		{"exe:/opt/a=b/c=ns/sa", "exe:/opt/a=b/c=ns/sa", ""},
		{"uid:4294967296=a/b", "", "decimal"},
		{"uid:+1=a/b", "", "decimal"},
		{"uid:01=a/b", "", "decimal"},
		{"pid:1=a/b", "", "unknown kind"},
		{"exe:relative=a/b", "", "absolute"},
		{"exe:/a/../b=a/b", "", "clean"},
		{"uid:1=Shop/web", "", "namespace"},
		{"uid:1=shop/", "", "serviceAccount"},
		{"uid:1=shop", "", "namespace/serviceAccount"},
		{"uid:1", "", "selector=namespace/serviceAccount"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			e, err := ParseEntry(tt.in)
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), tt.errPart) {
					t.Fatalf("ParseEntry(%q) = %v, %v; want error containing %q", tt.in, e, err, tt.errPart)
				}
				return
			}
			if err != nil || e.String() != tt.want {
				t.Fatalf("ParseEntry(%q) = %v, %v; want %s", tt.in, e, err, tt.want)
			}
		})
	}
}

func TestParseTableConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		yaml    string
		want    []string
		errPart []string
	}{
		{"two entries", `
entries:
- selector: uid:1000
  namespace: shop
  serviceAccount: web
- selector: exe:/usr/bin/x
  namespace: shop
  serviceAccount: x
`, []string{"uid:1000=shop/web", "exe:/usr/bin/x=shop/x"}, nil},
		{"json works too", `{"entries":[{"selector":"gid:3","namespace":"a","serviceAccount":"b"}]}`, []string{"gid:3=a/b"}, nil},
		{"every error is reported with its index", `
entries:
- selector: uid:x
  namespace: a
  serviceAccount: b
- selector: uid:1
  namespace: A
  serviceAccount: b
`, nil, []string{"entries[0].selector", "entries[1]: workload identity A/b: namespace"}},
		{"unknown field", "entries:\n- selector: uid:1\n  namespace: a\n  serviceAccount: b\n  weight: 3\n", nil, []string{"unknown field"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseTableConfig([]byte(tt.yaml))
			if tt.errPart != nil {
				if err == nil {
					t.Fatalf("no error; got %v", got)
				}
				for _, p := range tt.errPart {
					if !strings.Contains(err.Error(), p) {
						t.Errorf("error %q does not mention %q", err, p)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d entries, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i].String() != tt.want[i] {
					t.Errorf("entries[%d] = %s, want %s", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// FuzzParseEntry: parsing never panics, and what parses round-trips through String.
func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{"uid:1000=shop/web", "unix:gid:0=a/b", "exe:/x=y=a/b", "uid:=/", "exe:/=a/b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEntry(s)
		if err != nil {
			return
		}
		again, err := ParseEntry(e.String())
		if err != nil {
			t.Fatalf("ParseEntry(%q) ok but its String %q does not parse: %v", s, e.String(), err)
		}
		if again.String() != e.String() || again.Selector.id != e.Selector.id {
			t.Fatalf("round trip %q -> %q -> %q", s, e, again)
		}
		if _, err := NewTable(td, []Entry{e}); err != nil {
			t.Fatalf("parsed entry %q rejected by NewTable: %v", e, err)
		}
	})
}

// FuzzParseTableConfig: arbitrary bytes never panic, and an accepted table builds.
func FuzzParseTableConfig(f *testing.F) {
	f.Add([]byte("entries:\n- selector: uid:1\n  namespace: a\n  serviceAccount: b\n"))
	f.Add([]byte(`{"entries":[{"selector":"exe:/bin/sh","namespace":"x","serviceAccount":"y.z"}]}`))
	f.Add([]byte("entries: [1, 2]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ParseTableConfig(data)
		if err != nil {
			return
		}
		if _, err := NewTable(td, entries); err != nil {
			t.Fatalf("accepted table does not build: %v", err)
		}
	})
}
