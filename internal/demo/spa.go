package demo

import (
	"embed"
	"io/fs"
)

//go:embed spa
var spaFiles embed.FS

// SPA returns the demo single-page app: index.html, app.js, style.css and
// favicon.svg at its root. The page has no inline script or style, so it runs
// under a strict Content-Security-Policy; its one <script src="/app.js">
// carries no nonce, for the gateway to add one. It talks to the gateway only:
// GET /bff/user, /bff/login?returnUrl=/, the bff:logout_url claim, and GET
// /api/demo/whoami and /api/demo/time/stream, every fetch with X-CSRF: 1.
func SPA() fs.FS {
	sub, err := fs.Sub(spaFiles, "spa")
	if err != nil {
		// fs.Sub fails only for an invalid path, and "spa" is valid.
		panic(err)
	}
	return sub
}
