package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/causeway-mesh/causeway/control"
	"github.com/causeway-mesh/causeway/proxy"
)

type tapFlags struct {
	api, node, to, from, method, pathPrefix, output string
	max                                             int
	duration                                        time.Duration
}

// tapped is one event with the node whose proxy saw it.
type tapped struct {
	Node string `json:"node"`
	proxy.TapEvent
}

func newTapCmd() *cobra.Command {
	var f tapFlags
	cmd := &cobra.Command{
		Use:   "tap [--node ID] [--to ns/svc] [--from ns/sa]",
		Short: "Stream live request summaries from the sidecars",
		Long: `Find the connected sidecars through the control plane's REST API (causeway up,
causeway control) and stream what their admin /tap endpoints see: one line per
request with direction, method, authority, path, status, latency, the verified
caller and the backend chosen. Filters narrow the stream; -n or --duration end it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runTap(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.api, "api", "127.0.0.1:15000", "control plane REST API address (host:port or URL)")
	fl.StringVar(&f.node, "node", "", "only the sidecar with this node ID")
	fl.StringVar(&f.to, "to", "", "only requests to this service (ns/name)")
	fl.StringVar(&f.from, "from", "", "only requests from this caller (ns/serviceaccount or a SPIFFE ID)")
	fl.StringVar(&f.method, "method", "", "only this HTTP method")
	fl.StringVar(&f.pathPrefix, "path", "", "only paths with this prefix")
	fl.IntVarP(&f.max, "max", "n", 0, "stop after this many events (0: no limit)")
	fl.DurationVar(&f.duration, "duration", 0, "stop after this long (0: until interrupted)")
	fl.StringVarP(&f.output, "output", "o", "text", "text or json (one event per line)")
	return cmd
}

func runTap(cmd *cobra.Command, f tapFlags) error {
	if f.output != "text" && f.output != "json" {
		return usageErr("tap: -o %s: want text or json", f.output)
	}
	if f.max < 0 || f.duration < 0 {
		return usageErr("tap: -n and --duration must not be negative")
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	if f.duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
	}
	base := f.api
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	proxies, err := tapTargets(ctx, strings.TrimSuffix(base, "/"), f.node)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("tap: %w", err)}
	}
	events := make(chan tapped)
	var wg sync.WaitGroup
	for _, p := range proxies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			streamTap(ctx, p, events)
		}()
	}
	go func() { wg.Wait(); close(events) }()

	out := cmd.OutOrStdout()
	enc := json.NewEncoder(out)
	n := 0
	for ev := range events {
		if !f.matches(ev) {
			continue
		}
		if f.output == "json" {
			if err := enc.Encode(ev); err != nil {
				return err
			}
		} else {
			fmt.Fprintln(out, formatTap(ev))
		}
		if n++; f.max > 0 && n >= f.max {
			cancel()
			for range events { // let the streams see the cancel and end
			}
			break
		}
	}
	return nil
}

// tapTargets lists the connected sidecars that have an admin address.
func tapTargets(ctx context.Context, base, node string) ([]control.SyncState, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/proxies", nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("control plane REST API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%s/api/v1/proxies: %s: %s", base, resp.Status, strings.TrimSpace(string(b)))
	}
	var list struct {
		Items []control.SyncState `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("%s/api/v1/proxies: %w", base, err)
	}
	var out []control.SyncState
	for _, p := range list.Items {
		if p.Connected && p.AdminAddress != "" && (node == "" || p.Node.ID == node) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		if node != "" {
			return nil, fmt.Errorf("no connected sidecar with node ID %q", node)
		}
		return nil, fmt.Errorf("no connected sidecars")
	}
	return out, nil
}

// streamTap reads one sidecar's /tap until ctx ends or the stream does.
func streamTap(ctx context.Context, p control.SyncState, events chan<- tapped) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.AdminAddress+"/tap", nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var ev tapped
		if json.Unmarshal(sc.Bytes(), &ev.TapEvent) != nil {
			continue
		}
		ev.Node = p.Node.ID
		select {
		case events <- ev:
		case <-ctx.Done():
			return
		}
	}
}

func (f tapFlags) matches(ev tapped) bool {
	if f.to != "" && ev.Service != f.to && !strings.HasPrefix(ev.Service, f.to+":") {
		return false
	}
	if f.from != "" {
		want := f.from
		if !strings.HasPrefix(want, "spiffe://") {
			ns, sa, _ := strings.Cut(want, "/")
			want = "/ns/" + ns + "/sa/" + sa
		}
		if !strings.HasSuffix(ev.Caller, want) {
			return false
		}
	}
	if ev.Protocol == "tcp" && (f.method != "" || f.pathPrefix != "") {
		return false // a flow has no method or path to match
	}
	if f.method != "" && !strings.EqualFold(ev.Method, f.method) {
		return false
	}
	return f.pathPrefix == "" || strings.HasPrefix(ev.Path, f.pathPrefix)
}

// formatTap renders one event as a line, in the spirit of `linkerd tap`.
func formatTap(ev tapped) string {
	var b strings.Builder
	if ev.Protocol == "tcp" {
		fmt.Fprintf(&b, "%s %s %-8s TCP %s in=%dB out=%dB %s %.2fms", ev.Time.Format("15:04:05.000"), ev.Node, ev.Direction,
			ev.Service, ev.BytesIn, ev.BytesOut, ev.Classification, ev.LatencyMs)
		if ev.Caller != "" {
			fmt.Fprintf(&b, " caller=%s", ev.Caller)
		}
		if ev.Backend != "" {
			fmt.Fprintf(&b, " backend=%s", ev.Backend)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "%s %s %-8s %s %s %s%s -> %d", ev.Time.Format("15:04:05.000"), ev.Node, ev.Direction,
		ev.Method, ev.Service, ev.Authority, ev.Path, ev.Status)
	if ev.GRPCStatus != "" {
		fmt.Fprintf(&b, " grpc=%s", ev.GRPCStatus)
	}
	fmt.Fprintf(&b, " %s %.2fms", ev.Classification, ev.LatencyMs)
	if ev.Caller != "" {
		fmt.Fprintf(&b, " caller=%s", ev.Caller)
	}
	if ev.Backend != "" {
		fmt.Fprintf(&b, " backend=%s", ev.Backend)
	}
	return b.String()
}
