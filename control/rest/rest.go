package rest

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/causeway-mesh/causeway/control"
	"github.com/causeway-mesh/causeway/control/metrics"
	"github.com/causeway-mesh/causeway/spec"
)

// API serves the control plane's state as JSON.
type API struct {
	Control *control.Server
	// Metrics backs the SMI metrics API; nil answers those paths with 503.
	Metrics *metrics.Aggregator
	// Links backs /api/v1/links (links.go); nil answers those paths with 503.
	Links  Links
	Logger *slog.Logger
}

// Handler returns the router: /api/v1/... for the mesh and its proxies,
// metrics.BasePath/... for SMI TrafficMetrics.
func (a *API) Handler() http.Handler {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		a.error(w, http.StatusNotFound, "no such path: "+req.URL.Path)
	})
	a.linkRoutes(r) // before the GET-only /api/v1 prefix, which would shadow POST and DELETE
	v1 := r.PathPrefix("/api/v1").Methods(http.MethodGet).Subrouter()
	v1.HandleFunc("/services", a.items(func(s *spec.Snapshot) any { return orEmpty(s.Services) }))
	v1.HandleFunc("/routes", a.items(func(s *spec.Snapshot) any { return orEmpty(s.Routes) }))
	v1.HandleFunc("/splits", a.items(func(s *spec.Snapshot) any { return orEmpty(s.Splits) }))
	v1.HandleFunc("/policies", a.items(func(s *spec.Snapshot) any { return orEmpty(s.Policies) }))
	v1.HandleFunc("/snapshot", a.snapshot)
	v1.HandleFunc("/diagnostics", a.diagnostics)
	v1.HandleFunc("/proxies", a.proxies)
	v1.HandleFunc("/proxies/{id}", a.proxy)

	smi := r.PathPrefix(metrics.BasePath).Methods(http.MethodGet).Subrouter()
	smi.HandleFunc("", a.apiResources)
	smi.HandleFunc("/", a.apiResources)
	smi.HandleFunc("/namespaces", a.smiList)
	smi.HandleFunc("/namespaces/{ns}", a.smiNamespace)
	smi.HandleFunc("/namespaces/{ns}/{kind}", a.smiList)
	smi.HandleFunc("/namespaces/{ns}/{kind}/{name}", a.smiGet)
	smi.HandleFunc("/namespaces/{ns}/{kind}/{name}/edges", a.smiEdges)
	return r
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// list is the envelope of every /api/v1 collection: the snapshot version
// the items come from, so a client can tell two answers apart.
type list struct {
	Version string `json:"version"`
	Items   any    `json:"items"`
}

func (a *API) items(pick func(*spec.Snapshot) any) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		s := a.Control.Snapshot()
		if s == nil {
			a.error(w, http.StatusServiceUnavailable, "no snapshot yet: see /api/v1/diagnostics")
			return
		}
		a.json(w, http.StatusOK, list{Version: s.Version, Items: pick(s)})
	}
}

func (a *API) snapshot(w http.ResponseWriter, _ *http.Request) {
	s := a.Control.Snapshot()
	if s == nil {
		a.error(w, http.StatusServiceUnavailable, "no snapshot yet: see /api/v1/diagnostics")
		return
	}
	a.json(w, http.StatusOK, struct {
		Version  string         `json:"version"`
		Snapshot *spec.Snapshot `json:"snapshot"`
	}{s.Version, s})
}

func (a *API) diagnostics(w http.ResponseWriter, _ *http.Request) {
	a.json(w, http.StatusOK, a.Control.Status())
}

// proxyJSON adds the derived in-sync flag to a sync state.
type proxyJSON struct {
	control.SyncState
	InSync bool `json:"inSync"`
}

func (a *API) proxies(w http.ResponseWriter, _ *http.Request) {
	ps := a.Control.Proxies()
	out := make([]proxyJSON, len(ps))
	for i, p := range ps {
		out[i] = proxyJSON{p, p.InSync()}
	}
	a.json(w, http.StatusOK, list{Version: a.Control.Status().Version, Items: out})
}

func (a *API) proxy(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	p, ok := a.Control.Proxy(id)
	if !ok {
		a.error(w, http.StatusNotFound, "proxy "+id+" not found")
		return
	}
	a.json(w, http.StatusOK, proxyJSON{p, p.InSync()})
}

func (a *API) apiResources(w http.ResponseWriter, _ *http.Request) {
	a.json(w, http.StatusOK, metrics.APIResources())
}

// query builds the SMI answer's inputs. Before the first scrape it scrapes
// once, so the first request after start is not empty.
func (a *API) query(w http.ResponseWriter, r *http.Request) (metrics.Query, bool) {
	if a.Metrics == nil {
		a.error(w, http.StatusServiceUnavailable, "metrics are not enabled on this control plane")
		return metrics.Query{}, false
	}
	s := a.Control.Snapshot()
	if s == nil {
		a.error(w, http.StatusServiceUnavailable, "no snapshot yet: see /api/v1/diagnostics")
		return metrics.Query{}, false
	}
	v, ok := a.Metrics.View()
	if !ok {
		if err := a.Metrics.Refresh(r.Context()); err != nil {
			a.log().Warn("control: metrics scrape incomplete", "err", err)
		}
		v, _ = a.Metrics.View()
	}
	return metrics.Query{View: v, Snapshot: s}, true
}

func (a *API) kind(w http.ResponseWriter, r *http.Request) (metrics.Kind, bool) {
	name, ok := mux.Vars(r)["kind"]
	if !ok {
		name = "namespaces"
	}
	k, found := metrics.LookupKind(name)
	if !found || (name != "namespaces") != k.Namespaced {
		a.error(w, http.StatusNotFound, "the SMI metrics API here serves namespaces, services and trafficsplits, not "+name)
		return metrics.Kind{}, false
	}
	return k, true
}

func (a *API) smiList(w http.ResponseWriter, r *http.Request) {
	k, ok := a.kind(w, r)
	if !ok {
		return
	}
	q, ok := a.query(w, r)
	if !ok {
		return
	}
	a.json(w, http.StatusOK, q.List(k, mux.Vars(r)["ns"]))
}

func (a *API) smiNamespace(w http.ResponseWriter, r *http.Request) {
	k, _ := metrics.LookupKind("namespaces")
	q, ok := a.query(w, r)
	if !ok {
		return
	}
	a.answer(w)(q.Get(k, "", mux.Vars(r)["ns"]))
}

func (a *API) smiGet(w http.ResponseWriter, r *http.Request) {
	k, ok := a.kind(w, r)
	if !ok {
		return
	}
	q, ok := a.query(w, r)
	if !ok {
		return
	}
	v := mux.Vars(r)
	a.answer(w)(q.Get(k, v["ns"], v["name"]))
}

func (a *API) smiEdges(w http.ResponseWriter, r *http.Request) {
	k, ok := a.kind(w, r)
	if !ok {
		return
	}
	q, ok := a.query(w, r)
	if !ok {
		return
	}
	v := mux.Vars(r)
	l, err := q.Edges(k, v["ns"], v["name"])
	a.answer(w)(l, err)
}

func (a *API) answer(w http.ResponseWriter) func(any, error) {
	return func(v any, err error) {
		var nf metrics.ErrNotFound
		switch {
		case errors.As(err, &nf):
			a.error(w, http.StatusNotFound, err.Error())
		case err != nil:
			a.error(w, http.StatusInternalServerError, err.Error())
		default:
			a.json(w, http.StatusOK, v)
		}
	}
}

func (a *API) log() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

func (a *API) json(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		a.log().Debug("control: write response", "err", err)
	}
}

func (a *API) error(w http.ResponseWriter, code int, msg string) {
	a.json(w, code, map[string]string{"error": strings.TrimSpace(msg)})
}

// ProxyTargets lists the connected proxies that announced an admin address,
// as scrape targets for metrics.HTTPSource.
func ProxyTargets(s *control.Server) func() []metrics.Target {
	return func() []metrics.Target {
		var out []metrics.Target
		for _, p := range s.Proxies() {
			if p.Connected && p.AdminAddress != "" {
				out = append(out, metrics.Target{Node: p.Node, URL: "http://" + p.AdminAddress + "/metrics"})
			}
		}
		return out
	}
}
