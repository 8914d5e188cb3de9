package proxy

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// startAdmin serves /ready, /live, /metrics, /config and /tap on the admin
// address (loopback only; Validate checks). No admin address, no server.
func (p *Proxy) startAdmin() error {
	if p.boot.Admin == "" {
		return nil
	}
	ln, err := net.Listen("tcp", p.boot.Admin)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	p.adminLn = ln
	r := mux.NewRouter()
	r.HandleFunc("/live", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "live")
	}).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/ready", p.serveReady).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/metrics", p.metricsHandler()).Methods(http.MethodGet)
	r.HandleFunc("/config", p.serveConfig).Methods(http.MethodGet)
	r.HandleFunc("/tap", p.tap.serveTap(p.done)).Methods(http.MethodGet)
	p.admin = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second, ErrorLog: p.errLog}
	p.servers = append(p.servers, p.admin)
	p.lns = append(p.lns, ln)
	p.goServe(p.admin, ln)
	return nil
}

// AdminAddr is the admin server's address (after Start), or nil.
func (p *Proxy) AdminAddr() net.Addr {
	if p.adminLn == nil {
		return nil
	}
	return p.adminLn.Addr()
}

// HTTPProxyAddr is the forward proxy's address (after Start), or nil.
func (p *Proxy) HTTPProxyAddr() net.Addr {
	if p.fwdLn == nil {
		return nil
	}
	return p.fwdLn.Addr()
}

func (p *Proxy) metricsHandler() http.Handler {
	return promhttp.HandlerFor(p.m.reg, promhttp.HandlerOpts{ErrorLog: p.errLog})
}

// serveReady is 200 once a config is in force, 503 before.
func (p *Proxy) serveReady(w http.ResponseWriter, _ *http.Request) {
	st := p.state.Load()
	if !st.ready {
		http.Error(w, "no config applied yet", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready", st.cfg.Version)
}

// configView is /config's body: the NodeConfig in force and when it came.
type configView struct {
	Version string    `json:"version"`
	Applied time.Time `json:"applied"`
	Config  any       `json:"config"`
}

func (p *Proxy) serveConfig(w http.ResponseWriter, _ *http.Request) {
	st := p.state.Load()
	if !st.ready {
		http.Error(w, "no config applied yet", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(configView{Version: st.cfg.Version, Applied: st.applied, Config: st.cfg})
}
