// Package spa serves the single-page app: static files with an index.html
// fallback for client-side routes, or a development server's output.
//
// Caching: index.html is never cached (it carries a fresh CSP nonce on every
// response); files under assets/ or whose name carries a content hash
// (app-3f9a1c2b.js) are cached for a year; everything else is revalidated.
package spa

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"
)

// DefaultCSP is the Content-Security-Policy of index.html; {nonce} is
// replaced by the response's nonce, which is also set on every <script> tag.
const DefaultCSP = "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// reserved path prefixes never fall back to index.html.
var reserved = []string{"/bff/"}

// Files serves fsys.
type Files struct {
	fsys     fs.FS
	csp      string
	reserved []string
}

// NewFiles serves fsys (the SPA's build output). Paths starting with any of
// noFallback (API prefixes) never get index.html.
func NewFiles(fsys fs.FS, noFallback ...string) *Files {
	return &Files{fsys: fsys, csp: DefaultCSP, reserved: append(append([]string(nil), reserved...), noFallback...)}
}

// WithCSP sets index.html's policy; {nonce} is replaced per response. An
// empty policy keeps DefaultCSP.
func (f *Files) WithCSP(policy string) *Files {
	if policy != "" {
		f.csp = policy
	}
	return f
}

var hashed = regexp.MustCompile(`[.-][0-9A-Za-z_]{8,}\.[a-z0-9]+$`)

func (f *Files) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	for _, p := range f.reserved {
		if strings.HasPrefix(r.URL.Path, p) || r.URL.Path+"/" == p {
			http.NotFound(w, r)
			return
		}
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" || name == "index.html" {
		f.index(w, r)
		return
	}
	file, err := f.fsys.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !strings.Contains(path.Base(name), ".") {
			f.index(w, r) // a client-side route
			return
		}
		http.NotFound(w, r)
		return
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil || st.IsDir() {
		http.NotFound(w, r)
		return
	}
	rs, ok := file.(io.ReadSeeker)
	if !ok {
		b, err := io.ReadAll(file)
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		rs = bytes.NewReader(b)
	}
	if strings.HasPrefix(name, "assets/") || hashed.MatchString(name) {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, name, st.ModTime(), rs)
}

var scriptTag = regexp.MustCompile(`(?i)<script\b`)

// index serves index.html with a fresh nonce on every <script> tag and in
// the CSP header.
func (f *Files) index(w http.ResponseWriter, r *http.Request) {
	b, err := fs.ReadFile(f.fsys, "index.html")
	if err != nil {
		http.NotFound(w, r)
		return
	}
	nonce := newNonce()
	b = scriptTag.ReplaceAll(b, []byte(`<script nonce="`+nonce+`"`))
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", strings.ReplaceAll(f.csp, "{nonce}", nonce))
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(b))
}

func newNonce() string {
	b := make([]byte, 18)
	rand.Read(b)
	return base64.RawStdEncoding.EncodeToString(b)
}

// DevServer proxies to a development server such as Vite's (HMR WebSockets
// included). The browser's cookies are not forwarded.
func DevServer(target *url.URL) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Del("Authorization")
			pr.Out.Host = target.Host
		},
	}
}
