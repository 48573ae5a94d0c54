package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// errUnsupportedMediaType refuses a request body that is not JSON: 415.
var errUnsupportedMediaType = errors.New("request body is not JSON")

// ipExtractor decides the client IP of a request. With no trusted proxies
// it is the peer address and X-Forwarded-For is ignored. Behind trusted
// proxies (CIDRs) X-Forwarded-For is read from the right, and the client is
// the first address that is not a trusted proxy; a header sent by an
// untrusted peer is ignored, and so is everything left of an entry that is
// not an address. Entries may carry a port ("203.0.113.9:443",
// "[2001:db8::7]:443"), as some proxies write them. Loopback, link-local and
// private addresses are trusted only when listed.
func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	direct := echo.ExtractIPDirect()
	if len(trusted) == 0 {
		return direct
	}
	isTrusted := func(ip net.IP) bool {
		for _, n := range trusted {
			if n.Contains(ip) {
				return true
			}
		}
		return false
	}
	return func(req *http.Request) string {
		peer := direct(req)
		if ip := net.ParseIP(peer); ip == nil || !isTrusted(ip) {
			return peer
		}
		xff := req.Header.Values(echo.HeaderXForwardedFor)
		if len(xff) == 0 {
			return peer
		}
		entries := strings.Split(strings.Join(xff, ","), ",")
		for i := len(entries) - 1; i >= 0; i-- {
			ip := forwardedIP(entries[i])
			if ip == nil {
				return peer // cannot believe what a bad entry hides
			}
			if !isTrusted(ip) || i == 0 {
				return ip.String()
			}
		}
		return peer // not reached: the loop returns at i == 0
	}
}

// forwardedIP parses one X-Forwarded-For entry: an address, bare or in
// brackets, with or without a port; nil if it is none of these.
func forwardedIP(entry string) net.IP {
	entry = strings.TrimSpace(entry)
	if ip := net.ParseIP(entry); ip != nil {
		return ip
	}
	if host, _, err := net.SplitHostPort(entry); err == nil {
		return net.ParseIP(host)
	}
	return net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(entry, "["), "]"))
}

// requireJSON answers 415 to a POST, PUT or PATCH whose body is not JSON.
// A body declared as JSON (application/json or application/<x>+json)
// passes, and so does a request without a body whatever its Content-Type
// says: the original Python clients send "Content-Type: application/json"
// with an empty body, curl -X POST sends no Content-Type at all. A body
// under another label passes only if it is JSON all the same: the original
// service documented curl -d '{}', which labels it
// application/x-www-form-urlencoded. Anything else (a form, XML, text) is
// refused before any route sees it.
func requireJSON(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		switch req.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
		default:
			return next(c)
		}
		if isJSON(req.Header.Get(echo.HeaderContentType)) || !hasBody(req) {
			return next(c)
		}
		// Bounded by the body limit, which runs first (413 past it).
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return err
		}
		if !json.Valid(body) {
			return errUnsupportedMediaType
		}
		req.Body = readCloser{Reader: bytes.NewReader(body), Closer: req.Body}
		return next(c)
	}
}

func isJSON(contentType string) bool {
	if contentType == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == echo.MIMEApplicationJSON || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// hasBody reports whether req carries at least one byte of body. A body of
// unknown length (chunked) is peeked at and put back.
func hasBody(req *http.Request) bool {
	if req.Body == nil || req.Body == http.NoBody {
		return false
	}
	if req.ContentLength > 0 {
		return true
	}
	if req.ContentLength == 0 {
		return false
	}
	br := bufio.NewReaderSize(req.Body, 16)
	_, err := br.Peek(1)
	req.Body = readCloser{Reader: br, Closer: req.Body}
	return err == nil
}

type readCloser struct {
	io.Reader
	io.Closer
}
