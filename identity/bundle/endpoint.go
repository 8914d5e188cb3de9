package bundle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/federation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ServerID is the SPIFFE ID the bundle endpoint presents, the counterpart of
// SPIRE's spiffe://<td>/spire/server. Peers configure it as the
// endpoint_spiffe_id of their https_spiffe federation relationship.
func ServerID(td spiffeid.TrustDomain) spiffeid.ID {
	id, _ := spiffeid.FromSegments(td, "causeway", "server") // constant segments: cannot fail
	return id
}

// Endpoint serves one trust domain's bundle with the https_spiffe profile.
type Endpoint struct {
	srv *http.Server
	log *slog.Logger
}

// NewEndpoint returns an endpoint publishing td's bundle from bundles, over
// TLS with the certificate from svid (which should hold ServerID(td)). The
// SVID is read on every handshake, so a renewing source needs no restart.
func NewEndpoint(td spiffeid.TrustDomain, bundles spiffebundle.Source, svid x509svid.Source, log *slog.Logger) (*Endpoint, error) {
	if log == nil {
		log = slog.Default()
	}
	h, err := federation.NewHandler(td, bundles)
	if err != nil {
		return nil, fmt.Errorf("bundle endpoint %s: %w", td, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	return &Endpoint{
		log: log.With("trustDomain", td.Name()),
		srv: &http.Server{
			Handler:           mux,
			TLSConfig:         tlsconfig.TLSServerConfig(svid),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
	}, nil
}

// Serve accepts TLS connections on l until Shutdown; it returns nil after a
// clean shutdown.
func (e *Endpoint) Serve(l net.Listener) error {
	e.log.Info("serving SPIFFE bundle endpoint", "addr", l.Addr().String())
	err := e.srv.ServeTLS(l, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for in-flight requests, up to ctx.
func (e *Endpoint) Shutdown(ctx context.Context) error { return e.srv.Shutdown(ctx) }
