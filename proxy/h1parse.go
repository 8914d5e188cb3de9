package proxy

import (
	"bytes"
	"errors"
)

// The HTTP/1.1 fast path (h1server.go) parses request and response heads
// itself, into slices of one reused buffer, instead of net/http's maps of
// fresh strings. It only accepts the plain shape of a message; anything
// else is errH1Unusual and the connection goes to net/http (requests) or
// the exchange fails with 502 (responses), so the strict, well-tested
// parser keeps the last word on everything odd.

// errH1Unusual says a request head is valid HTTP the fast path leaves to
// net/http, or not valid HTTP (net/http then answers 400 or 431).
var errH1Unusual = errors.New("request head not on the fast path")

// h1Field is one header field; drop marks a hop-by-hop field that is not
// forwarded.
type h1Field struct {
	name, value []byte
	drop        bool
}

// h1Head is a parsed request or response head. Every slice points into buf,
// which the head owns and reuses for the next message on the connection.
type h1Head struct {
	buf    []byte
	fields []h1Field

	// Request line.
	method, target []byte
	// Status line.
	status int
	proto  []byte // "HTTP/1.1" or "HTTP/1.0"
	reason []byte

	host          []byte
	hasHost       bool
	contentLength int64 // -1: absent
	chunked       bool  // Transfer-Encoding: chunked (responses only)
	teOther       bool  // a Transfer-Encoding other than chunked (responses only)
	close         bool  // Connection: close, or HTTP/1.0 without keep-alive
	teTrailers    bool  // TE: trailers (requests; forwarded)
	xfcc          bool  // X-Forwarded-Client-Cert present (requests)
	grpcStatus    []byte
}

func (h *h1Head) reset() {
	h.fields = h.fields[:0]
	h.method, h.target, h.proto, h.reason, h.host, h.grpcStatus = nil, nil, nil, nil, nil, nil
	h.status, h.hasHost, h.contentLength = 0, false, -1
	h.chunked, h.teOther, h.close, h.teTrailers, h.xfcc = false, false, false, false, false
}

// headEnd returns the length of the head at the start of b (through the
// blank line), or -1 when b does not hold a whole head yet.
func headEnd(b []byte, from int) int {
	if from > 3 {
		from -= 3
	} else {
		from = 0
	}
	i := bytes.Index(b[from:], crlfcrlf)
	if i < 0 {
		return -1
	}
	return from + i + 4
}

var crlfcrlf = []byte("\r\n\r\n")

// parseRequestHead parses a request head (b holds it whole, blank line
// included) into h, copying it into h.buf first.
func parseRequestHead(b []byte, h *h1Head) error {
	h.reset()
	h.buf = append(h.buf[:0], b...)
	line, rest, ok := cutLine(h.buf)
	if !ok {
		return errH1Unusual
	}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return errH1Unusual
	}
	h.method = line[:sp1]
	line = line[sp1+1:]
	sp2 := bytes.IndexByte(line, ' ')
	if sp2 <= 0 {
		return errH1Unusual
	}
	h.target, h.proto = line[:sp2], line[sp2+1:]
	// HTTP/1.0 keep-alive rules, absolute-form (the forward proxy), CONNECT
	// and OPTIONS * are left to net/http.
	// Escaped or fragment-bearing targets too: net/http's URL parsing
	// decides what their path is.
	if string(h.proto) != "HTTP/1.1" || h.target[0] != '/' || !isToken(h.method) || !validTarget(h.target) ||
		bytes.IndexByte(h.target, '%') >= 0 || bytes.IndexByte(h.target, '#') >= 0 {
		return errH1Unusual
	}
	if err := h.parseFields(rest); err != nil {
		return err
	}
	if !h.hasHost || !validHost(h.host) {
		return errH1Unusual
	}
	return nil
}

// validHost accepts the bytes net/http's server accepts in Host (its
// httpguts.ValidHostHeader); anything else is net/http's to refuse.
func validHost(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || !hostChar[c] {
			return false
		}
	}
	return true
}

var hostChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!$%&'()*+,-.:;=[]_~" {
		t[c] = true
	}
	return t
}()

// parseFields parses header lines up to the blank line, marking hop-by-hop
// fields and noting what framing and forwarding need.
func (h *h1Head) parseFields(b []byte) error {
	var connTokens [][]byte
	request := h.method != nil
	for {
		line, rest, ok := cutLine(b)
		if !ok {
			return errH1Unusual
		}
		b = rest
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return errH1Unusual // also obs-fold: a line starting with SP/HT
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !validValue(value) {
			return errH1Unusual
		}
		f := h1Field{name: name, value: value}
		switch {
		case equalFold(name, "host"):
			if !request {
				break
			}
			if h.hasHost {
				return errH1Unusual
			}
			h.host, h.hasHost, f.drop = value, true, true
		case equalFold(name, "content-length"):
			n, ok := parseContentLength(value)
			if !ok || (h.contentLength >= 0 && h.contentLength != n) {
				return errH1Unusual
			}
			h.contentLength = n
		case equalFold(name, "transfer-encoding"):
			if request {
				return errH1Unusual // chunked uploads go through net/http
			}
			f.drop = true
			if lastToken(value, "chunked") {
				h.chunked = true
			} else {
				h.teOther = true
			}
		case equalFold(name, "connection"):
			f.drop = true
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = trimOWS(tok)
				switch {
				case equalFold(tok, "close"):
					h.close = true
				case equalFold(tok, "keep-alive"), len(tok) == 0:
				default:
					connTokens = append(connTokens, tok)
				}
			}
		case equalFold(name, "upgrade"), equalFold(name, "expect"), equalFold(name, "http2-settings"),
			equalFold(name, "causeway-retryable"):
			if request {
				// Upgrades need the hijack dance, 100-continue the
				// server's interim response, explicit retries a
				// buffered body: net/http's path has all three.
				return errH1Unusual
			}
			f.drop = equalFold(name, "upgrade")
		case equalFold(name, "te"):
			f.drop = true
			if request && bytes.Contains(value, []byte("trailers")) {
				h.teTrailers = true
			}
		case equalFold(name, "keep-alive"), equalFold(name, "proxy-connection"),
			equalFold(name, "proxy-authenticate"), equalFold(name, "proxy-authorization"):
			f.drop = true
		case equalFold(name, "trailer"):
			// A request's Trailer is hop-by-hop (we never send a chunked
			// request body); a response's announces the trailers that
			// pass through verbatim with its chunked body.
			f.drop = request
		case equalFold(name, "x-forwarded-client-cert"):
			if request {
				h.xfcc = true
			}
		case equalFold(name, "grpc-status"):
			if !request {
				h.grpcStatus = value
			}
		}
		h.fields = append(h.fields, f)
	}
	if len(b) != 0 {
		return errH1Unusual
	}
	for _, tok := range connTokens {
		for i := range h.fields {
			if name := h.fields[i].name; len(name) == len(tok) && asciiEqualFoldBoth(name, string(tok)) {
				h.fields[i].drop = true
			}
		}
	}
	return nil
}

// parseResponseHead parses a status line and header fields (b holds the
// head whole) into h, copying it into h.buf first.
func parseResponseHead(b []byte, h *h1Head) error {
	h.reset()
	h.buf = append(h.buf[:0], b...)
	line, rest, ok := cutLine(h.buf)
	if !ok || len(line) < 12 || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return errors.New("malformed status line")
	}
	h.proto = line[:8]
	switch string(h.proto) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		h.close = true // unless it says keep-alive; we do not ask for that
	default:
		return errors.New("unsupported response protocol")
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return errors.New("malformed status code")
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return errors.New("malformed status code")
	}
	h.status = code
	if len(line) > 13 {
		h.reason = line[13:]
	}
	if err := h.parseFields(rest); err != nil {
		return errors.New("malformed response header")
	}
	if string(h.proto) == "HTTP/1.0" {
		h.close = true
	}
	return nil
}

// cutLine splits off one CRLF-terminated line. A bare LF is refused: the
// fast path does not guess at lenient framing.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	return b[:i-1], b[i+1:], true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares ASCII case-insensitively; lower must be lower case.
func equalFold[T []byte | string](b T, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// lastToken reports whether a comma-separated list ends with tok.
func lastToken(v []byte, tok string) bool {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return equalFold(trimOWS(v), tok)
}

func parseContentLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// isToken reports RFC 9110 token characters only.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !tokenChar[c] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validTarget refuses control characters, spaces and DEL in a request
// target (net/http's rule: any other byte is left to URL parsing).
func validTarget(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// validValue refuses control characters other than HTAB in a field value.
func validValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// Get makes a request head a spec.HeaderGetter: the first value of a field,
// case-insensitive, as http.Header.Get; Host is not a header there either.
func (h *h1Head) Get(name string) string {
	for i := range h.fields {
		f := &h.fields[i]
		if len(f.name) == len(name) && asciiEqualFoldBoth(f.name, name) {
			if equalFold(f.name, "host") {
				return ""
			}
			return string(f.value)
		}
	}
	return ""
}

func asciiEqualFoldBoth(b []byte, s string) bool {
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// path is the request target without its query: url.URL.Path for a
// target without escapes, the only kind the fast path takes.
func (h *h1Head) path() string {
	t := h.target
	if i := bytes.IndexByte(t, '?'); i >= 0 {
		t = t[:i]
	}
	return string(t)
}

// methodString interns the common methods so routing does not allocate.
func methodString(m []byte) string {
	switch string(m) {
	case "GET":
		return "GET"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "HEAD":
		return "HEAD"
	case "OPTIONS":
		return "OPTIONS"
	case "PATCH":
		return "PATCH"
	}
	return string(m)
}
