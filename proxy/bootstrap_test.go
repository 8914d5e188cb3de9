package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLoadBootstrap: the sample loads as documented, and each kind of
// mistake is reported with the field it is in.
func TestLoadBootstrap(t *testing.T) {
	t.Parallel()
	b, err := LoadBootstrap("testdata/bootstrap-example.yaml")
	if err != nil {
		t.Fatalf("sample: %v", err)
	}
	if b.Admin != "127.0.0.1:9901" || len(b.Outbound.Ports) != 2 || b.Config == nil || b.Config.Version != "example-1" {
		t.Fatalf("sample read wrong: %+v", b)
	}
	if got := b.Services[0].Routes[0].Timeout.D(); got != 30*time.Second {
		t.Fatalf("route timeout %v, want 30s", got)
	}
	if _, err := b.Config.Prepare(); err != nil {
		t.Fatalf("sample config does not prepare: %v", err)
	}

	cases := []struct {
		name, yaml, want string
	}{
		{"admin not loopback", "admin: 0.0.0.0:9901", "admin"},
		{"bad service key", "outbound: {ports: [{service: books, port: 80, listen: 127.0.0.1:1}]}", "outbound.ports[0].service"},
		{"port out of range", "outbound: {ports: [{service: a/b, port: 0, listen: 127.0.0.1:1}]}", "outbound.ports[0].port"},
		{"duplicate listen", "outbound: {ports: [{service: a/b, port: 1, listen: 127.0.0.1:7}, {service: a/c, port: 1, listen: 127.0.0.1:7}]}", "outbound.ports[1].listen"},
		{"bad duration", "policy: {timeout: soon}", "duration"},
		{"unknown field", "admn: 127.0.0.1:1", "admn"},
		{"both config and configFile", "config: {mode: strict}\nconfigFile: x.yaml", "both"},
		{"missing configFile", "configFile: nope.yaml", "nope.yaml"},
	}
	dir := t.TempDir()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(dir, "b"+string(rune('a'+i))+".yaml")
			if err := os.WriteFile(f, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadBootstrap(f)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

// FuzzPreamble: parsePreamble never panics, accepts exactly what
// putPreamble writes, and round-trips every valid port.
func FuzzPreamble(f *testing.F) {
	var b [preambleLen]byte
	putPreamble(b[:], 80)
	f.Add(b[:])
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Add([]byte{0x16, 3, 1, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		port, err := parsePreamble(in)
		if err != nil {
			return
		}
		if port <= 0 || port > 65535 {
			t.Fatalf("port %d accepted", port)
		}
		var out [preambleLen]byte
		putPreamble(out[:], port)
		if string(out[:6]) != string(in[:6]) {
			t.Fatalf("round trip: %x -> %d -> %x", in[:preambleLen], port, out)
		}
	})
}

// FuzzBootstrap: any document either loads into a bootstrap that validates
// or is refused with an error; it never panics.
func FuzzBootstrap(f *testing.F) {
	data, err := os.ReadFile("testdata/bootstrap-example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"admin":"127.0.0.1:1","outbound":{"ports":[{"service":"a/b","port":1,"listen":"127.0.0.1:0"}]}}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, in []byte) {
		file := filepath.Join(dir, "b.yaml")
		if err := os.WriteFile(file, in, 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := LoadBootstrap(file)
		if err != nil {
			return
		}
		if err := b.Validate(); err != nil {
			t.Fatalf("loaded bootstrap does not validate: %v", err)
		}
	})
}
