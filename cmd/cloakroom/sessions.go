package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
)

const sessionsUsage = `usage:
  cloakroom sessions list   --sub SUBJECT             [--frontend NAME] [admin flags]
  cloakroom sessions revoke --sub SUBJECT | --id HANDLE [--frontend NAME] [admin flags]

  --frontend NAME  only that frontend's sessions (with several frontends)

admin flags:
  --config FILE   read admin_listen and admin_token from the configuration
  --admin URL     the admin listener (default http://127.0.0.1:9090, or admin_listen)
  the token comes from $CLOAKROOM_ADMIN_TOKEN, else the configuration
`

// sessions is the operator's view of server-side sessions, through the
// session admin API on admin_listen.
func sessions(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "list" && args[0] != "revoke") {
		fmt.Fprint(stderr, sessionsUsage)
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("sessions "+verb, flag.ContinueOnError)
	cfgPath := fs.String("config", "", "configuration file")
	adminURL := fs.String("admin", "", "admin listener URL")
	sub := fs.String("sub", "", "subject")
	id := fs.String("id", "", "session handle (revoke only)")
	frontend := fs.String("frontend", "", "only this frontend's sessions")
	if code, ok := parse(fs, args[1:], stderr); !ok {
		return code
	}
	if (*sub == "") == (*id == "") || (verb == "list" && *sub == "") {
		fmt.Fprint(stderr, sessionsUsage)
		return 2
	}
	base, token := *adminURL, os.Getenv("CLOAKROOM_ADMIN_TOKEN")
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath, os.LookupEnv)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if base == "" && cfg.AdminListen != "" {
			host := cfg.AdminListen
			if strings.HasPrefix(host, ":") {
				host = "127.0.0.1" + host
			}
			base = "http://" + host
		}
		if token == "" {
			token = cfg.AdminToken
		}
	}
	if base == "" {
		base = "http://127.0.0.1:9090"
	}
	if token == "" {
		fmt.Fprintln(stderr, "cloakroom sessions: no admin token: set CLOAKROOM_ADMIN_TOKEN or pass --config")
		return 1
	}
	q := url.Values{}
	if *sub != "" {
		q.Set("sub", *sub)
	}
	if *frontend != "" {
		q.Set("frontend", *frontend)
	}
	method, path := http.MethodGet, "/admin/sessions"
	switch {
	case verb == "revoke" && *id != "":
		method, path = http.MethodDelete, "/admin/sessions/"+url.PathEscape(*id)
	case verb == "revoke":
		method = http.MethodDelete
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	body, err := adminCall(ctx, method, strings.TrimRight(base, "/")+path, token)
	if err != nil {
		fmt.Fprintf(stderr, "cloakroom sessions: %v\n", err)
		return 1
	}
	if verb == "revoke" {
		var res struct{ Revoked int }
		json.Unmarshal(body, &res)
		fmt.Fprintf(stdout, "revoked %d session(s)\n", res.Revoked)
		return 0
	}
	type listed struct {
		Handle, Frontend, Sub, ClientIP, UserAgent string
		IdPSID                                     string `json:"idp_sid"`
		Created, LastSeen, Expires                 time.Time
	}
	var list []listed
	if err := json.Unmarshal(body, &list); err != nil {
		fmt.Fprintf(stderr, "cloakroom sessions: unexpected answer: %v\n", err)
		return 1
	}
	// A FRONTEND column when the gateway has named frontends.
	named := slices.ContainsFunc(list, func(s listed) bool { return s.Frontend != "" })
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if named {
		fmt.Fprint(tw, "FRONTEND\t")
	}
	fmt.Fprintln(tw, "HANDLE\tCREATED\tLAST SEEN\tEXPIRES\tIDP SID\tCLIENT")
	for _, s := range list {
		if named {
			fmt.Fprintf(tw, "%s\t", s.Frontend)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s %s\n", s.Handle, s.Created.Format(time.RFC3339), s.LastSeen.Format(time.RFC3339),
			s.Expires.Format(time.RFC3339), s.IdPSID, s.ClientIP, s.UserAgent)
	}
	tw.Flush()
	return 0
}

func adminCall(ctx context.Context, method, u, token string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var p struct{ Detail string }
		json.Unmarshal(body, &p)
		return nil, errors.New(resp.Status + ": " + p.Detail)
	}
	return body, nil
}
