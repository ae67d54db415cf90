package dex

import (
	"fmt"
	"testing"
)

func TestSubject(t *testing.T) {
	// The sub Dex's documentation shows for its sample static password
	// user, whose userID this package reuses.
	const want = "CiQwOGE4Njg0Yi1kYjg4LTRiNzMtOTBhOS0zY2QxNjYxZjU0NjYSBWxvY2Fs"
	if got := subject(UserID, connectorID); got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestParsePasswordForm(t *testing.T) {
	const form = `<form method="post" action="/dex/auth/local/login?back=&amp;state=abc">
	<input tabindex="1" required id="login" name="login" type="text" class="theme-form-input" placeholder="email address" autofocus/>
	<input tabindex="2" required id="password" name="password" type="password" class="theme-form-input" placeholder="password"/>
	%s
	<button tabindex="3" id="submit-login" type="submit" class="dex-btn theme-btn--primary">Login</button>
	</form>`
	tests := []struct {
		name, page  string
		wantErr     bool
		wantInvalid bool
	}{
		{name: "first", page: fmt.Sprintf(form, "")},
		{name: "rejected", page: fmt.Sprintf(form, `<div id="login-error" class="dex-error-box">Invalid Email Address and password.</div>`), wantInvalid: true},
		{name: "error page", page: `<div class="theme-panel"><h2 class="theme-heading">Bad Request</h2></div>`, wantErr: true},
		{name: "no password field", page: `<form action="/x"><input name="login"></form>`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parsePasswordForm(tt.page)
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if f.action != "/dex/auth/local/login?back=&state=abc" {
				t.Errorf("got action %v, want %v", f.action, "/dex/auth/local/login?back=&state=abc")
			}
			if f.invalid != tt.wantInvalid {
				t.Errorf("got invalid %v, want %v", f.invalid, tt.wantInvalid)
			}
		})
	}
}
