package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminHandler serves /live, /ready, /metrics (the gateway's own registry)
// and /config.
func (g *Gateway) adminHandler() http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/live", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "live")
	}).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/ready", g.serveReady).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/metrics", g.Metrics()).Methods(http.MethodGet)
	r.HandleFunc("/config", g.serveConfig).Methods(http.MethodGet)
	return r
}

// Metrics serves the gateway's Prometheus registry (as /metrics does).
func (g *Gateway) Metrics() http.Handler {
	return promhttp.HandlerFor(g.m.reg, promhttp.HandlerOpts{ErrorLog: g.errLog})
}

// serveReady is 200 once a config is in force, 503 before: a gateway
// without one refuses every connection.
func (g *Gateway) serveReady(w http.ResponseWriter, _ *http.Request) {
	st := g.state.Load()
	if st == nil {
		http.Error(w, "no config applied yet", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready", st.cfg.Version)
}

// ConfigView is /config's body: the NodeConfig in force, when it came, and
// what the gateway makes of it (every exported port and its endpoints).
type ConfigView struct {
	Version     string              `json:"version"`
	Applied     time.Time           `json:"applied"`
	TrustDomain string              `json:"trustDomain"`
	Exported    map[string][]string `json:"exported"`
	Config      any                 `json:"config"`
}

func (g *Gateway) serveConfig(w http.ResponseWriter, _ *http.Request) {
	st := g.state.Load()
	if st == nil {
		http.Error(w, "no config applied yet", http.StatusServiceUnavailable)
		return
	}
	v := ConfigView{Version: st.cfg.Version, Applied: st.applied, TrustDomain: g.own.Name(),
		Exported: map[string][]string{}, Config: st.cfg}
	for _, svc := range st.services {
		for _, p := range svc.ports {
			v.Exported[p.name] = p.addrs
		}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
