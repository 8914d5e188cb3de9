package harness

import (
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr string
	}{
		// Fields after the name: state ppid pgrp session tty tpgid flags
		// minflt cminflt majflt cmajflt utime stime ...
		{name: "plain", stat: "42 (haproxy) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0",
			want: 3 * time.Second},
		{name: "name with spaces and parentheses", stat: "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0",
			want: 30 * time.Millisecond},
		{name: "truncated", stat: "7 (x) R 1 7", wantErr: "fields"},
		{name: "no name", stat: "garbage", wantErr: "')'"},
		{name: "bad utime", stat: "7 (x) R 1 7 7 0 -1 0 0 0 0 0 x 2 0 0", wantErr: "utime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseStatCPU([]byte(tt.stat))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseStatCPU = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestParseStatusMemory(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  string
		want    Memory
		wantErr string
	}{
		{name: "all three", status: "Name:\tnginx\nVmPeak:\t  20000 kB\nVmHWM:\t    9500 kB\nVmRSS:\t    9100 kB\nRssAnon:\t    1692 kB\nRssFile:\t    7408 kB\nThreads:\t1\n",
			want: Memory{RSS: 9100 << 10, Peak: 9500 << 10, Anon: 1692 << 10}},
		{name: "RssAnon is optional (kernels before 4.5)", status: "VmHWM:\t2 kB\nVmRSS:\t1 kB\n",
			want: Memory{RSS: 1 << 10, Peak: 2 << 10}},
		{name: "kernel thread has neither", status: "Name:\tkthreadd\nThreads:\t1\n", wantErr: "missing"},
		{name: "odd unit", status: "VmHWM:\t1 MB\nVmRSS:\t1 kB\n", wantErr: "VmHWM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseStatusMemory([]byte(tt.status))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseStatusMemory = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestResetPeak checks, on this test process, the two /proc facts the
// harness relies on: VmHWM keeps a peak after memory is given back, and
// ResetPeak brings it down to the current RSS so each load has its own peak.
func TestResetPeak(t *testing.T) {
	pid := os.Getpid()
	const big = 64 << 20
	b := make([]byte, big)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	runtime.KeepAlive(b)
	b = nil
	debug.FreeOSMemory()

	steps := []struct {
		name  string
		reset bool
		check func(m Memory) bool
		want  string
	}{
		{"peak remembers the freed 64 MiB", false, func(m Memory) bool { return m.Peak-m.RSS >= big/2 }, "peak - RSS >= 32 MiB"},
		{"ResetPeak forgets it", true, func(m Memory) bool { return m.Peak-m.RSS < big/4 }, "peak - RSS < 16 MiB"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.reset {
				if err := ResetPeak(pid); err != nil {
					t.Skipf("clear_refs not writable here: %v", err)
				}
			}
			m, err := ReadMemory(pid)
			if err != nil {
				t.Fatal(err)
			}
			if !st.check(m) {
				t.Errorf("memory = %+v, want %s", m, st.want)
			}
			u, err := Sample([]int{pid, pid})
			if err != nil || u.RSS < 2*m.RSS/2 || u.CPU <= 0 {
				t.Errorf("Sample of the process twice = %+v, %v: want the sum of two readings and CPU > 0", u, err)
			}
		})
	}
}
