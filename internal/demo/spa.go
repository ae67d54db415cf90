package demo

import (
	"embed"
	"io/fs"
	"path"
	"slices"
)

//go:embed spa admin
var spaFiles embed.FS

// SPA returns the demo single-page app: index.html, app.js, style.css and
// favicon.svg at its root. The page has no inline script or style, so it runs
// under a strict Content-Security-Policy; its one <script src="/app.js">
// carries no nonce, for the gateway to add one. It talks to the gateway only:
// GET /bff/user, /bff/login?returnUrl=/, the bff:logout_url claim, and GET
// /api/demo/whoami and /api/demo/time/stream, every fetch with X-CSRF: 1. It
// links to the admin console at AdminPath.
func SPA() fs.FS {
	sub, err := fs.Sub(spaFiles, "spa")
	if err != nil {
		// fs.Sub fails only for an invalid path, and "spa" is valid.
		panic(err)
	}
	return sub
}

// sharedFiles are the shop's files that the admin console serves as its
// own: one look for both.
var sharedFiles = []string{"style.css", "favicon.svg"}

// AdminSPA returns the admin console, the demo's second frontend, to be
// served at AdminPath with the prefix stripped: index.html, app.js and
// admin.css of its own, and the shop's style.css and favicon.svg. Like
// SPA it has no inline code and leaves nonces to the gateway. It talks to
// its own frontend only, every path under AdminPath: GET /admin/bff/user,
// /admin/bff/login?returnUrl=/admin/, the bff:logout_url claim, and GET
// /admin/api/overview, every fetch with X-CSRF: 1.
func AdminSPA() fs.FS { return adminFS{} }

// adminFS is the admin directory with sharedFiles laid over it.
type adminFS struct{}

func (adminFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if slices.Contains(sharedFiles, name) {
		return spaFiles.Open(path.Join("spa", name))
	}
	return spaFiles.Open(path.Join("admin", name))
}
