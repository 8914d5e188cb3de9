package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// startProfile records where causeway-1hop spends its CPU during the load
// and returns a func that waits for the recording and summarizes it. It asks
// the admin server's /debug/pprof first; when that is absent it samples the
// process with Linux perf (cpu-clock, so it works without hardware counters
// in a VM), which needs no help from the proxy.
func startProfile(ctx context.Context, p Plan, sys *Running) func() []string {
	secs := max(1, int(p.Duration/time.Second)-1)
	if hasPprof(ctx, sys.Admin) {
		return pprofProfile(ctx, p, sys, secs)
	}
	if _, err := exec.LookPath("perf"); err == nil {
		return perfProfile(ctx, p, sys, secs)
	}
	return func() []string {
		return []string{"no CPU profile: the admin server has no /debug/pprof and perf is not installed (apt-get install linux-perf)"}
	}
}

func hasPprof(ctx context.Context, admin string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/debug/pprof/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func pprofProfile(ctx context.Context, p Plan, sys *Running, secs int) func() []string {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", sys.Admin, secs)
	type answer struct {
		body []byte
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			ch <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s answered %s", url, resp.Status)
		}
		ch <- answer{b, err}
	}()
	return func() []string {
		a := <-ch
		if a.err != nil {
			return []string{"no CPU profile: " + firstLine(a.err.Error())}
		}
		if err := os.WriteFile(p.ProfileOut, a.body, 0o644); err != nil {
			return []string{"no CPU profile: " + err.Error()}
		}
		out, err := pinnedOutput(ctx, "", "go", "tool", "pprof", "-top", "-nodecount=10", p.Causeway, p.ProfileOut)
		if err != nil {
			return []string{"profile saved to " + p.ProfileOut + "; pprof failed: " + firstLine(err.Error())}
		}
		return append([]string{"pprof from /debug/pprof, saved to " + p.ProfileOut}, strings.Split(strings.TrimRight(out, "\n"), "\n")...)
	}
}

func perfProfile(ctx context.Context, p Plan, sys *Running, secs int) func() []string {
	data := filepath.Join(p.Dir, "causeway-1hop.perf.data")
	pid := sys.Children[len(sys.Children)-1].PID()
	done := make(chan error, 1)
	go func() {
		_, err := pinnedOutput(ctx, "", "perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "-g",
			"-p", fmt.Sprint(pid), "-o", data, "--", "sleep", fmt.Sprint(secs))
		done <- err
	}()
	return func() []string {
		if err := <-done; err != nil {
			return []string{"no CPU profile: /debug/pprof absent; perf record failed: " + firstLine(err.Error())}
		}
		flat, err1 := pinnedOutput(ctx, "", "perf", "report", "-i", data, "--no-children", "--sort", "symbol", "--stdio", "-g", "none")
		cum, err2 := pinnedOutput(ctx, "", "perf", "report", "-i", data, "--children", "--sort", "symbol", "--stdio", "-g", "none")
		dso, err3 := pinnedOutput(ctx, "", "perf", "report", "-i", data, "--no-children", "--sort", "dso", "--stdio", "-g", "none")
		if err1 != nil || err2 != nil || err3 != nil {
			return []string{"no CPU profile: perf report failed"}
		}
		out := []string{"/debug/pprof absent on the admin server; sampled with perf record -e cpu-clock -F 499 -g for " + fmt.Sprint(secs) + " s",
			"", "where: " + strings.Join(TopDSO(dso), ", "),
			"", "top 10 by self time ([k] kernel, [.] user):"}
		out = append(out, TopPerf(flat, false, 10, nil)...)
		out = append(out, "", "top 10 Causeway functions by time including callees:")
		out = append(out, TopPerf(cum, true, 10, func(sym string) bool { return strings.Contains(sym, "causeway-mesh/causeway") })...)
		return out
	}
}

// TopDSO reads `perf report --sort dso` output as "56.3% causeway" items:
// how the time splits between the program, the kernel and the vDSO.
func TopDSO(report string) []string {
	var out []string
	for _, line := range strings.Split(report, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasSuffix(f[0], "%") || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, f[0]+" "+f[1])
	}
	return out
}

// TopPerf picks the first n entries from `perf report --stdio --sort symbol`
// output (with or without --children), keeping those keep accepts (nil keeps
// all), as "  12.34%  [k] symbol" lines. With children the inclusive share
// is the one shown.
func TopPerf(report string, children bool, n int, keep func(string) bool) []string {
	var out []string
	for _, line := range strings.Split(report, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasSuffix(f[0], "%") || strings.HasPrefix(line, "#") {
			continue
		}
		i := 1
		if children {
			if len(f) < 4 || !strings.HasSuffix(f[1], "%") {
				continue
			}
			i = 2
		}
		if !strings.HasPrefix(f[i], "[") {
			continue
		}
		sym := f[i+1]
		if keep != nil && !keep(sym) {
			continue
		}
		out = append(out, fmt.Sprintf("  %7s  %s %s", f[0], f[i], sym))
		if len(out) == n {
			break
		}
	}
	return out
}
