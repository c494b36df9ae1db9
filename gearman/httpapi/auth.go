package httpapi

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
)

// guard checks every request before it is routed:
//
//   - On a loopback listener the Host header must name a loopback host.
//     A web page on another site could otherwise point its own name at
//     127.0.0.1 (DNS rebinding) and read the API as same-origin.
//   - Mutating requests (anything but GET, HEAD, OPTIONS) from a browser
//     on another origin are refused (http.CrossOriginProtection), so that
//     a page elsewhere cannot post to the loopback API without a token.
//   - With a token configured, mutating requests and backups carry
//     "Authorization: Bearer <token>", compared in constant time.
//     Read-only requests need none: they are open to whoever can connect,
//     which without a token is the local host only.
func (a *API) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Loopback && !loopbackHost(r.Host) {
			writeError(w, http.StatusForbidden, "host "+r.Host+" is not a loopback name; this API listens on loopback only")
			return
		}
		if err := a.cross.Check(r); err != nil {
			writeError(w, http.StatusForbidden, "cross-origin request refused: "+err.Error())
			return
		}
		if needsToken(r) && !a.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gearsched"`)
			writeError(w, http.StatusUnauthorized, "this request needs Authorization: Bearer <token> (--http-token-file)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// needsToken reports whether r changes something or reads the whole
// database: the requests a token guards.
func needsToken(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return r.URL.Path == "/api/v1/backup"
	}
	return true
}

func (a *API) authorized(r *http.Request) bool {
	if a.cfg.Token == "" {
		return true
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "Bearer") &&
		subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(a.cfg.Token)) == 1
}

// loopbackHost reports whether a Host header names this machine's
// loopback: localhost or a loopback address, with or without a port.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsLoopback reports whether a listen address (host:port) binds only to
// loopback. An empty host means every interface, and a name other than
// localhost may resolve anywhere: neither is loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && host != "" && loopbackHost(host)
}
