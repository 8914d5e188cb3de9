package harness

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The samples are `perf report --stdio --sort symbol -g none` (perf 6.1)
// of causeway-1hop under wrk, with and without --children.
func TestTopPerf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		file     string
		children bool
		n        int
		keep     func(string) bool
		want     []string
	}{
		{name: "self time", file: "perf-flat.txt", n: 3, want: []string{
			"   12.72%  [k] _raw_spin_unlock_irqrestore",
			"    2.31%  [.] runtime.unlock2",
			"    2.17%  [k] tcp_sendmsg_locked",
		}},
		{name: "inclusive, Causeway's own functions", file: "perf-children.txt", children: true, n: 3,
			keep: func(s string) bool { return strings.Contains(s, "causeway-mesh/causeway") },
			want: []string{
				"   24.13%  [.] github.com/causeway-mesh/causeway/proxy.(*Proxy).serveFixed",
				"   24.13%  [.] github.com/causeway-mesh/causeway/proxy.(*Proxy).serveFixed-fm",
				"   23.70%  [.] github.com/causeway-mesh/causeway/proxy.(*Proxy).serveOutbound",
			}},
		{name: "inclusive, first entry", file: "perf-children.txt", children: true, n: 1,
			want: []string{"   94.08%  [.] runtime.goexit.abi0"}},
		{name: "headers and blank lines only", file: "", n: 5, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			text := "# Overhead  Symbol\n#\n\n"
			if tt.file != "" {
				text = readTestdata(t, tt.file)
			}
			got := TopPerf(text, tt.children, tt.n, tt.keep)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("TopPerf =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestTopDSO(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, report string
		want         []string
	}{
		{"perf 6.1 layout", "# Overhead  Shared Object\n# ........  .............\n#\n    56.32%  causeway         \n    40.81%  [kernel.kallsyms]\n     2.87%  [vdso]           \n\n",
			[]string{"56.32% causeway", "40.81% [kernel.kallsyms]", "2.87% [vdso]"}},
		{"empty", "#\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := TopDSO(tt.report); strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("TopDSO = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHasPprof(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		want   bool
	}{
		{"admin serves /debug/pprof/", http.StatusOK, true},
		{"admin without pprof", http.StatusNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/debug/pprof/" {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			if got := hasPprof(context.Background(), strings.TrimPrefix(srv.URL, "http://")); got != tt.want {
				t.Errorf("hasPprof = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("nothing listening", func(t *testing.T) {
		t.Parallel()
		if hasPprof(context.Background(), "127.0.0.1:1") {
			t.Error("hasPprof = true for a closed port")
		}
	})
}
