package bff

import (
	"net/url"
	"strings"
	"unicode"
)

// LocalPath reports whether v is safe to redirect the browser to after
// login or logout: "" (meaning "/") or a path on this origin. It refuses
// anything a browser could read as another origin: "//host", "/\host"
// (browsers treat "\" as "/"), schemes ("https:x", "javascript:"), and any
// control or space character, which browsers strip ("/\t/evil" becomes
// "//evil").
func LocalPath(v string) (string, bool) {
	if v == "" {
		return "/", true
	}
	if len(v) > 2048 || v[0] != '/' {
		return "", false
	}
	if len(v) > 1 && (v[1] == '/' || v[1] == '\\') {
		return "", false
	}
	for _, r := range v {
		if r == '\\' || unicode.IsControl(r) || unicode.IsSpace(r) || r == unicode.ReplacementChar {
			return "", false
		}
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "", false
	}
	// A percent-encoded slash or backslash right after the first "/" decodes
	// to "//" in some routers; refuse it too.
	lower := strings.ToLower(v)
	if strings.HasPrefix(lower, "/%2f") || strings.HasPrefix(lower, "/%5c") {
		return "", false
	}
	return v, true
}
