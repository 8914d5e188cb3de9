package proxy

import (
	"io"
	"net/http"
	"net/textproto"
	"strings"
)

// The forwarder below is the hot path for every HTTP request that is not an
// Upgrade (those go through httputil.ReverseProxy, which owns the hijacked
// connection dance). It does what ReverseProxy does for a plain request with
// less: the server's request is reused as the outbound one instead of
// cloned (the handler owns it, and nothing reads it after), and the exchange
// travels as an argument instead of a context value.

// hopHeaders are connection-scoped and never forwarded (RFC 9110 §7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopHeaders strips hop-by-hop headers, including those named in
// Connection. "TE: trailers" is kept on requests: gRPC needs it end to end.
func removeHopHeaders(h http.Header, request bool) {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				delete(h, textproto.CanonicalMIMEHeaderKey(sf))
			}
		}
	}
	trailers := false
	if request {
		for _, v := range h["Te"] {
			if strings.Contains(v, "trailers") {
				trailers = true
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
	if trailers {
		h["Te"] = teTrailers
	}
}

var teTrailers = []string{"trailers"}

// isUpgrade reports an Upgrade request (WebSocket and friends).
func isUpgrade(r *http.Request) bool {
	return r.ProtoMajor == 1 && len(r.Header["Upgrade"]) > 0
}

// prepareOutbound turns the server's request into a client request, in
// place. A sidecar is transparent: Host, the path and X-Forwarded-For stay as
// the client sent them.
func prepareOutbound(r *http.Request) {
	r.RequestURI = ""
	r.URL.Scheme = "http"
	r.Close = false
	if r.ContentLength == 0 {
		// A nil body lets the transport retry on a dead pooled connection.
		r.Body = nil
	}
	removeHopHeaders(r.Header, true)
	if _, ok := r.Header["User-Agent"]; !ok {
		// An empty entry stops Go's client from adding its own.
		r.Header["User-Agent"] = emptyUA
	}
}

var emptyUA = []string{""}

// writeResponse copies a response to the client: headers, body (flushed as
// it comes when the length is unknown, so streams and gRPC stay live) and
// trailers. It returns an error when the body broke off or the client went
// away; the caller must then abort the response (panic(http.ErrAbortHandler))
// so the client never takes a truncated body for a whole one.
func (p *Proxy) writeResponse(w http.ResponseWriter, resp *http.Response) error {
	defer resp.Body.Close()
	removeHopHeaders(resp.Header, false)
	dst := w.Header()
	for k, vv := range resp.Header {
		dst[k] = vv
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		dst["Trailer"] = keys
	}
	w.WriteHeader(resp.StatusCode)
	flush := resp.ContentLength == -1
	buf := p.bufs.Get()
	defer p.bufs.Put(buf)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr // the client is gone
			}
			if flush {
				if f, ok := w.(http.Flusher); ok {
					f.Flush()
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	// Trailers announced before the body are set under their own names;
	// if the upstream sent others (HTTP/2 need not announce them) all go
	// with TrailerPrefix, which net/http sends as trailers regardless.
	for k, vv := range resp.Trailer {
		if len(resp.Trailer) == announced {
			dst[k] = vv
		} else {
			dst[http.TrailerPrefix+k] = vv
		}
	}
	return nil
}
