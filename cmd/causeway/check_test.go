package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func osmDemo(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared", "smi-examples", "osm-demo")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("shared SMI examples not beside the repo (%v); CI clones them there", err)
	}
	return dir
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runIO(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheckRoutesOSMDemo(t *testing.T) {
	dir := osmDemo(t)
	code, out, errs := runCLI(t, "check", "routes", "-f", dir, "--tests", "testdata/osm-demo-routes.yaml", "--min-coverage", "40")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if !strings.Contains(out, "9 of 9 cases passed") {
		t.Errorf("stdout:\n%s", out)
	}
	if !strings.Contains(out, "split backends 2/2") {
		t.Errorf("both split backends should be exercised:\n%s", out)
	}
}

func TestCheckRoutesFailures(t *testing.T) {
	dir := osmDemo(t)
	tmp := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	wrong := write("wrong.yaml", `tests:
- name: thief expected in
  caller: bookthief/bookthief
  service: bookstore/bookstore
  path: /buy-a-book/new
  expect: {access: allow, backends: {bookstore/bookstore-v1: 90, bookstore/bookstore-v2: 10}}
`)
	code, out, _ := runCLI(t, "check", "routes", "-f", dir, "--tests", wrong)
	if code != 1 || !strings.Contains(out, "FAIL thief expected in") ||
		!strings.Contains(out, "want {bookstore/bookstore-v1=90% bookstore/bookstore-v2=10%}") ||
		!strings.Contains(out, "deny at bookstore/bookstore-v1") {
		t.Errorf("exit %d, stdout:\n%s", code, out)
	}

	// All cases pass, but they exercise too little.
	code, out, errs := runCLI(t, "check", "routes", "-f", dir, "--tests", "testdata/osm-demo-routes.yaml", "--min-coverage", "99")
	if code != 1 || !strings.Contains(errs, "is below --min-coverage 99.0%") {
		t.Errorf("exit %d, stderr:\n%s\nstdout:\n%s", code, errs, out)
	}

	bad := write("bad.yaml", "tests: [{name: x, service: a/b, expect: {access: perhaps}}]")
	if code, _, errs := runCLI(t, "check", "routes", "-f", dir, "--tests", bad); code != 1 || !strings.Contains(errs, "bad.yaml: tests[0] (x).expect.access") {
		t.Errorf("bad tests file: exit %d, stderr %s", code, errs)
	}
	if code, _, _ := runCLI(t, "check", "routes", "-f", dir); code != 2 {
		t.Errorf("missing --tests: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, "check", "routes", "-f", dir, "--tests", filepath.Join(tmp, "none.yaml")); code != 2 {
		t.Errorf("unreadable --tests: exit %d, want 2", code)
	}
}
