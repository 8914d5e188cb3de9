package rest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/causeway-mesh/causeway/federation"
)

// Links is the federation the API manages; *federation.Links is one.
type Links interface {
	List() []federation.Status
	Generate(ttl time.Duration) (federation.Token, error)
	Apply(ctx context.Context, tok federation.Token) (federation.Status, error)
	Remove(ctx context.Context, cluster string) error
}

// TokenRequest is the body of POST /api/v1/links/tokens.
type TokenRequest struct {
	// TTL is how long the token may be used, as a Go duration ("10m").
	TTL string `json:"ttl"`
}

// TokenResponse answers it: the encoded token and when it expires.
type TokenResponse struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// ApplyRequest is the body of POST /api/v1/links.
type ApplyRequest struct {
	Token string `json:"token"`
}

// maxTokenTTL bounds a token's life: it is a bearer credential until used.
const maxTokenTTL = 24 * time.Hour

func (a *API) linkRoutes(r *mux.Router) {
	r.HandleFunc("/api/v1/links", a.linkList).Methods(http.MethodGet)
	r.HandleFunc("/api/v1/links", a.linkApply).Methods(http.MethodPost)
	r.HandleFunc("/api/v1/links/tokens", a.linkToken).Methods(http.MethodPost)
	r.HandleFunc("/api/v1/links/{cluster}", a.linkRemove).Methods(http.MethodDelete)
}

func (a *API) links(w http.ResponseWriter) bool {
	if a.Links == nil {
		a.error(w, http.StatusServiceUnavailable, "federation is not enabled on this control plane (start it with --cluster and --federation-listen)")
		return false
	}
	return true
}

func (a *API) linkList(w http.ResponseWriter, _ *http.Request) {
	if a.links(w) {
		a.json(w, http.StatusOK, map[string]any{"items": a.Links.List()})
	}
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func (a *API) linkToken(w http.ResponseWriter, r *http.Request) {
	if !a.links(w) {
		return
	}
	var req TokenRequest
	if err := decodeBody(r, &req); err != nil {
		a.error(w, http.StatusBadRequest, "token request: "+err.Error())
		return
	}
	ttl, err := time.ParseDuration(req.TTL)
	if err != nil || ttl <= 0 || ttl > maxTokenTTL {
		a.error(w, http.StatusBadRequest, "token request: ttl "+req.TTL+": want a duration between 1s and 24h")
		return
	}
	tok, err := a.Links.Generate(ttl)
	if err != nil {
		a.error(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	a.json(w, http.StatusCreated, TokenResponse{Token: tok.Encode(), Expires: tok.Expires})
}

func (a *API) linkApply(w http.ResponseWriter, r *http.Request) {
	if !a.links(w) {
		return
	}
	var req ApplyRequest
	if err := decodeBody(r, &req); err != nil {
		a.error(w, http.StatusBadRequest, "apply request: "+err.Error())
		return
	}
	tok, err := federation.ParseToken(req.Token)
	if err != nil {
		a.error(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	st, err := a.Links.Apply(ctx, tok)
	if err != nil {
		// The peer refused or could not be reached: the request was fine.
		a.error(w, http.StatusBadGateway, err.Error())
		return
	}
	a.json(w, http.StatusCreated, st)
}

func (a *API) linkRemove(w http.ResponseWriter, r *http.Request) {
	if !a.links(w) {
		return
	}
	err := a.Links.Remove(r.Context(), mux.Vars(r)["cluster"])
	switch {
	case errors.Is(err, federation.ErrUnknownLink):
		a.error(w, http.StatusNotFound, err.Error())
	case err != nil:
		a.error(w, http.StatusInternalServerError, err.Error())
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
