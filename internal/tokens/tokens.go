// Package tokens finds the access token to attach to an API call: the
// user's from the session, or none.
package tokens

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/cloakroom/cloakroom/internal/httpx"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/session"
)

// Mode says which token a route forwards.
type Mode string

// Token modes of apis[].token.
const (
	User         Mode = "user"
	Client       Mode = "client"
	UserOrClient Mode = "user_or_client"
	UserOrNone   Mode = "user_or_none"
	None         Mode = "none"
	Exchange     Mode = "exchange"
)

// Source hands out tokens for sessions.
type Source struct {
	sessions *session.Manager
	oidc     *oidc.Client
	log      *slog.Logger
}

// New returns a Source.
func New(sessions *session.Manager, client *oidc.Client, log *slog.Logger) *Source {
	return &Source{sessions: sessions, oidc: client, log: log}
}

// RouteOptions describe one route's token needs.
type RouteOptions struct {
	Mode     Mode
	Scopes   []string
	Resource string
	Audience string
}

// Route is the token source of one API route; it satisfies proxy.Bearer.
type Route struct {
	src  *Source
	opts RouteOptions
}

// Route returns the source for one route.
func (s *Source) Route(o RouteOptions) (*Route, error) {
	switch o.Mode {
	case User, UserOrNone, None:
	default:
		return nil, fmt.Errorf("token mode %q is not supported", o.Mode)
	}
	return &Route{src: s, opts: o}, nil
}

var errUnauthorized = httpx.Error{Code: http.StatusUnauthorized, Empty: true, Msg: "no session"}

// Token implements proxy.Bearer.
func (rt *Route) Token(r *http.Request) (string, error) {
	if rt.opts.Mode == None {
		return "", nil
	}
	s, err := rt.src.sessions.Load(r)
	if errors.Is(err, session.ErrNotFound) {
		if rt.opts.Mode == UserOrNone {
			return "", nil
		}
		return "", errUnauthorized
	}
	if err != nil {
		return "", httpx.Error{Code: http.StatusServiceUnavailable, Msg: "session store unavailable", Err: err}
	}
	if err := rt.src.sessions.Touch(r.Context(), s); err != nil {
		return "", httpx.Error{Code: http.StatusServiceUnavailable, Msg: "session store unavailable", Err: err}
	}
	if s.AccessToken == "" {
		return "", errUnauthorized
	}
	return s.AccessToken, nil
}
