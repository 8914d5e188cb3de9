package workloadapi

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	workload "github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/identity/attest"
)

// securityHeader is the metadata every Workload API request must carry
// (SPIFFE Workload API §6.2.1); its absence is InvalidArgument, as in SPIRE.
const securityHeader = "workload.spiffe.io"

// attest checks the security header and returns the caller's SPIFFE ID.
func (s *Server) attest(ctx context.Context, rpc string) (spiffeid.ID, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(securityHeader); len(v) != 1 || v[0] != "true" {
		return spiffeid.ID{}, status.Error(codes.InvalidArgument, "security header missing from request")
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return spiffeid.ID{}, status.Error(codes.Internal, "no peer information")
	}
	pc, ok := p.AuthInfo.(PeerCredentials)
	if !ok {
		return spiffeid.ID{}, status.Error(codes.Internal, "no peer credentials")
	}
	caller := attest.Caller{PID: pc.PID, UID: pc.UID, GID: pc.GID, Metadata: md, Alive: pc.Alive}
	id, err := s.cfg.Attestor.Attest(ctx, caller)
	switch {
	case errors.Is(err, attest.ErrNoIdentity):
		s.log.Warn("denied Workload API caller", "rpc", rpc, "uid", pc.UID, "gid", pc.GID, "pid", pc.PID)
		return spiffeid.ID{}, status.Error(codes.PermissionDenied, "no identity issued")
	case err != nil:
		s.log.Error("attestation failed", "rpc", rpc, "uid", pc.UID, "gid", pc.GID, "pid", pc.PID, "err", err)
		return spiffeid.ID{}, status.Error(codes.Unavailable, "workload attestation failed")
	}
	return id, nil
}

// FetchX509SVID streams the caller's X.509-SVID with its trust bundle and the
// federated bundles, and sends again whenever any of them changes.
func (s *Server) FetchX509SVID(_ *workload.X509SVIDRequest, stream workload.SpiffeWorkloadAPI_FetchX509SVIDServer) error {
	ctx := stream.Context()
	id, err := s.attest(ctx, "FetchX509SVID")
	if err != nil {
		return err
	}
	src, err := s.source(id)
	if err != nil {
		return status.Errorf(codes.Internal, "SVID source for %s: %v", id, err)
	}
	var last *workload.X509SVIDResponse
	for {
		// Take the change channels before reading, so a change between the
		// read and the wait still wakes us.
		caUpdated, fedUpdated := s.cfg.CA.Updated(), s.federatedUpdated()
		svid, renewAt, err := src.Current()
		if err != nil {
			s.log.Error("issuing X.509-SVID failed", "id", id.String(), "err", err)
			return status.Errorf(codes.Unavailable, "issuing X.509-SVID: %v", err)
		}
		certs, key, err := svid.MarshalRaw()
		if err != nil {
			return status.Errorf(codes.Internal, "marshal X.509-SVID: %v", err)
		}
		resp := &workload.X509SVIDResponse{
			Svids: []*workload.X509SVID{{
				SpiffeId:    id.String(),
				X509Svid:    certs,
				X509SvidKey: key,
				Bundle:      concatDER(s.cfg.CA.Bundle().X509Authorities()),
			}},
			FederatedBundles: s.federatedX509(),
		}
		if !proto.Equal(resp, last) {
			if err := stream.Send(resp); err != nil {
				return err
			}
			last = resp
		}
		timer := time.NewTimer(max(renewAt.Sub(s.cfg.CA.Now()), 0))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		case <-caUpdated:
			timer.Stop()
		case <-fedUpdated:
			timer.Stop()
		}
	}
}

// FetchX509Bundles streams the X.509 authorities of the trust domain and of
// every federated trust domain, keyed by trust domain ID.
func (s *Server) FetchX509Bundles(_ *workload.X509BundlesRequest, stream workload.SpiffeWorkloadAPI_FetchX509BundlesServer) error {
	ctx := stream.Context()
	if _, err := s.attest(ctx, "FetchX509Bundles"); err != nil {
		return err
	}
	return streamChanges(ctx, s, stream.Send, func() (*workload.X509BundlesResponse, error) {
		bundles := s.federatedX509()
		if bundles == nil {
			bundles = map[string][]byte{}
		}
		bundles[s.cfg.CA.TrustDomain().IDString()] = concatDER(s.cfg.CA.Bundle().X509Authorities())
		return &workload.X509BundlesResponse{Bundles: bundles}, nil
	})
}

// FetchJWTSVID signs a JWT-SVID for the caller. A request naming a SPIFFE ID
// other than the caller's is refused, never answered with the caller's own.
func (s *Server) FetchJWTSVID(ctx context.Context, req *workload.JWTSVIDRequest) (*workload.JWTSVIDResponse, error) {
	if len(req.GetAudience()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "audience must be specified")
	}
	id, err := s.attest(ctx, "FetchJWTSVID")
	if err != nil {
		return nil, err
	}
	if want := req.GetSpiffeId(); want != "" && want != id.String() {
		return nil, status.Errorf(codes.PermissionDenied, "caller has no identity %q", want)
	}
	tok, err := s.cfg.CA.IssueJWTSVID(id, req.GetAudience(), s.cfg.JWTTTL)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "issuing JWT-SVID: %v", err)
	}
	return &workload.JWTSVIDResponse{Svids: []*workload.JWTSVID{{SpiffeId: id.String(), Svid: tok}}}, nil
}

// FetchJWTBundles streams the JWT authorities (JWKS) of the trust domain and
// of every federated trust domain that has any.
func (s *Server) FetchJWTBundles(_ *workload.JWTBundlesRequest, stream workload.SpiffeWorkloadAPI_FetchJWTBundlesServer) error {
	ctx := stream.Context()
	if _, err := s.attest(ctx, "FetchJWTBundles"); err != nil {
		return err
	}
	return streamChanges(ctx, s, stream.Send, func() (*workload.JWTBundlesResponse, error) {
		resp := &workload.JWTBundlesResponse{Bundles: map[string][]byte{}}
		all := append([]*spiffebundle.Bundle{s.cfg.CA.Bundle()}, s.federated()...)
		for _, b := range all {
			if len(b.JWTAuthorities()) == 0 {
				continue
			}
			jwks, err := b.JWTBundle().Marshal()
			if err != nil {
				return nil, status.Errorf(codes.Internal, "marshal JWT bundle %s: %v", b.TrustDomain(), err)
			}
			resp.Bundles[b.TrustDomain().IDString()] = jwks
		}
		return resp, nil
	})
}

// streamChanges sends build's answer, and again whenever a CA or federation
// change makes it differ from the last one sent, until the caller goes away.
// The change channels are taken before build reads, so a change between the
// read and the wait still wakes it.
func streamChanges[M proto.Message](ctx context.Context, s *Server, send func(M) error, build func() (M, error)) error {
	var last M
	for {
		caUpdated, fedUpdated := s.cfg.CA.Updated(), s.federatedUpdated()
		resp, err := build()
		if err != nil {
			return err
		}
		if !proto.Equal(resp, last) {
			if err := send(resp); err != nil {
				return err
			}
			last = resp
		}
		select {
		case <-ctx.Done():
			return nil
		case <-caUpdated:
		case <-fedUpdated:
		}
	}
}

// ValidateJWTSVID checks a token's signature (against this trust domain's or
// a federated trust domain's keys), expiry and audience, and returns its
// subject and claims.
func (s *Server) ValidateJWTSVID(ctx context.Context, req *workload.ValidateJWTSVIDRequest) (*workload.ValidateJWTSVIDResponse, error) {
	if req.GetAudience() == "" {
		return nil, status.Error(codes.InvalidArgument, "audience must be specified")
	}
	if req.GetSvid() == "" {
		return nil, status.Error(codes.InvalidArgument, "svid must be specified")
	}
	if _, err := s.attest(ctx, "ValidateJWTSVID"); err != nil {
		return nil, err
	}
	svid, err := jwtsvid.ParseAndValidate(req.GetSvid(), jwtBundleSource(s.jwtBundle), []string{req.GetAudience()})
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	claims, err := structpb.NewStruct(svid.Claims)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "claims of %s: %v", svid.ID, err)
	}
	return &workload.ValidateJWTSVIDResponse{SpiffeId: svid.ID.String(), Claims: claims}, nil
}

// jwtBundleSource adapts a lookup function to jwtbundle.Source.
type jwtBundleSource func(spiffeid.TrustDomain) (*jwtbundle.Bundle, error)

func (f jwtBundleSource) GetJWTBundleForTrustDomain(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	return f(td)
}

func (s *Server) jwtBundle(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	if td == s.cfg.CA.TrustDomain() {
		return s.cfg.CA.Bundle().JWTBundle(), nil
	}
	for _, b := range s.federated() {
		if b.TrustDomain() == td {
			return b.JWTBundle(), nil
		}
	}
	return nil, fmt.Errorf("no JWT bundle for trust domain %q", td)
}

func (s *Server) federated() []*spiffebundle.Bundle {
	if s.cfg.Federated == nil {
		return nil
	}
	return s.cfg.Federated.Bundles()
}

// federatedUpdated returns nil (never ready) when there is no federated source.
func (s *Server) federatedUpdated() <-chan struct{} {
	if s.cfg.Federated == nil {
		return nil
	}
	return s.cfg.Federated.Updated()
}

func (s *Server) federatedX509() map[string][]byte {
	var out map[string][]byte
	for _, b := range s.federated() {
		if b.TrustDomain() == s.cfg.CA.TrustDomain() || len(b.X509Authorities()) == 0 {
			continue
		}
		if out == nil {
			out = map[string][]byte{}
		}
		out[b.TrustDomain().IDString()] = concatDER(b.X509Authorities())
	}
	return out
}

// concatDER is the Workload API's encoding of certificate lists: DER
// certificates back to back, no separators.
func concatDER(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, c.Raw...)
	}
	return out
}
