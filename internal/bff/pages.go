package bff

import (
	"bytes"
	"html/template"
	"net/http"
)

// Pages carry no script, so their CSP forbids all.
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

var pages = template.Must(template.New("").Parse(`
{{define "landing"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="0;url={{.}}">
<title>Signed in</title></head>
<body><p>Signed in. <a href="{{.}}">Continue</a>.</p></body></html>
{{end}}
{{define "error"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign-in failed</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem}</style></head>
<body><h1>Sign-in failed</h1><p>{{.}}.</p><p><a href="/">Back to the application</a></p></body></html>
{{end}}`))

// landingPage ends a login with a same-origin navigation instead of a 302.
// The callback is reached by a cross-site redirect from the provider, and
// browsers withhold SameSite=Strict cookies for the rest of that redirect
// chain; a page on our own origin that navigates onward makes the next
// request same-site, so the fresh session cookie is sent (no login loop).
func landingPage(w http.ResponseWriter, to string) error {
	return render(w, http.StatusOK, "landing", to)
}

func errorPage(w http.ResponseWriter, code int, msg string) error {
	return render(w, code, "error", msg)
}

func render(w http.ResponseWriter, code int, name string, data any) error {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", pageCSP)
	w.WriteHeader(code)
	_, err := w.Write(b.Bytes())
	return err
}
