package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// demoAppChildEnv makes the test binary act as `causeway demo-app ARGS...`
// (ARGS separated by newlines), so the command runs as a real process that
// can receive SIGTERM.
const demoAppChildEnv = "CAUSEWAY_TEST_DEMOAPP_ARGS"

func TestDemoAppProcess(t *testing.T) {
	if args := os.Getenv(demoAppChildEnv); args != "" {
		os.Exit(run(strings.Split(args, "\n")))
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDemoAppProcess$")
	cmd.Env = append(os.Environ(), demoAppChildEnv+"="+strings.Join([]string{
		"demo-app", "--name", "cli", "--version", "v9", "--listen", "127.0.0.1:0",
		"--udp-echo", "127.0.0.1:0", "--fail-every", "2", "--fail-status", "502",
	}, "\n"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill() // only the child this test started, by its PID
			<-exited
		}
	})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()

	httpAddr := regexp.MustCompile(`http=(127\.0\.0\.1:\d+)`)
	var url string
	for url == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("demo-app exited before logging its addresses")
			}
			if m := httpAddr.FindStringSubmatch(l); m != nil && strings.Contains(l, "demo-app listening") {
				url = "http://" + m[1]
			}
		case <-time.After(30 * time.Second):
			t.Fatal("demo-app did not log its addresses within 30s")
		}
	}

	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for i, want := range []int{200, 502} {
		resp, err := client.Get(url + "/cli")
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Name, Version string }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != want || body.Name != "cli" || body.Version != "v9" {
			t.Fatalf("request %d: status %d body %+v err %v, want %d from cli v9", i, resp.StatusCode, body, err, want)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopped := false
	for l := range lines {
		stopped = stopped || strings.Contains(l, "demo-app stopped")
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("demo-app after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("demo-app still running 20s after SIGTERM")
	}
	if !stopped {
		t.Fatal("demo-app did not log its shutdown")
	}
}

func TestDemoAppUsage(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"demo-app", "--fail-rate", "2"}, "--fail-rate 2"},
		{[]string{"demo-app", "--latency", "soon"}, "latency"},
		{[]string{"demo-app", "extra"}, "unknown command"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errs := runCLI(t, tc.args...)
			if code != 2 || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d stderr %q, want 2 and %q", code, errs, tc.want)
			}
		})
	}
}
