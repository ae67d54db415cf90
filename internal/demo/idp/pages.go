package idp

import (
	"bytes"
	"html/template"
	"net/http"
)

// Banner heads every page the provider renders.
const Banner = "Development OpenID provider — not for production use"

var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem;color:#222}
.banner{background:#fff3cd;border:1px solid #e0c060;padding:.5rem .75rem;border-radius:4px;font-weight:600}
.error{color:#a00}
label{display:block;margin-top:.75rem}
input{width:100%;padding:.4rem;box-sizing:border-box}
button{margin-top:1rem;padding:.5rem 1rem}
.hint{color:#555;font-size:.9rem;white-space:pre-line}
</style>
</head>
<body>
<p class="banner" role="note">{{.Banner}}</p>
<h1>{{.Title}}</h1>
{{end}}

{{define "login"}}{{template "head" .}}
<p>Sign in to continue to <strong>{{.ClientID}}</strong>.</p>
{{with .Error}}<p class="error" id="error" role="alert">{{.}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="request" value="{{.Handle}}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required autofocus value="{{.Username}}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="submit" type="submit">Sign in</button>
</form>
{{with .Hint}}<p class="hint" id="hint">{{.}}</p>{{end}}
</body>
</html>
{{end}}

{{define "account"}}{{template "head" .}}
{{if .Subject}}<p id="status">Signed in as <strong id="username">{{.Username}}</strong> (subject <code id="subject">{{.Subject}}</code>, session <code id="sid">{{.SID}}</code>).</p>
<form method="post" action="{{.EndSessionAction}}">
<button id="logout" type="submit">Sign out of this browser</button>
</form>
<form method="post" action="{{.LogoutAllAction}}">
<button id="logout-all" type="submit">Sign out everywhere</button>
</form>
{{else}}<p id="status">Not signed in at the provider.</p>
{{end}}</body>
</html>
{{end}}

{{define "message"}}{{template "head" .}}
<p id="message">{{.Message}}</p>
</body>
</html>
{{end}}
`))

type loginPageData struct {
	ClientID, Username, Handle, Error string
	// Filled in by loginPage.
	Title, Banner, Action, Hint string
}

type messagePageData struct {
	Title, Banner, Message string
}

func (p *Provider) loginPage(w http.ResponseWriter, d loginPageData) {
	d.Title = "Sign in"
	d.Banner = Banner
	d.Action = p.prefix + "/authorize"
	d.Hint = p.loginHint
	p.renderPage(w, http.StatusOK, "login", d)
}

func (p *Provider) errorPage(w http.ResponseWriter, status int, title, msg string) {
	p.renderPage(w, status, "message", messagePageData{Title: title, Banner: Banner, Message: msg})
}

func (p *Provider) renderPage(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		p.log.Error("idp: render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// No form-action: Chromium applies it to the redirect that follows the
	// login form, which leaves for the client's redirect URI.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
