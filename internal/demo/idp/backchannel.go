package idp

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// backchannelTimeout bounds each delivery attempt.
	backchannelTimeout = 5 * time.Second
	// backchannelRetryDelay separates the first attempt from the retry.
	backchannelRetryDelay = 100 * time.Millisecond
	// maxDeliveries bounds BackchannelDeliveries; the oldest are forgotten first.
	maxDeliveries = 10000
	// maxReceiverBody is how much of a receiver's response is read.
	maxReceiverBody = 64 << 10
)

// Delivery is the outcome of one OIDC Back-Channel Logout 1.0 logout token
// sent to a client: one per client and ended session, after any retry.
type Delivery struct {
	ClientID string
	URI      string // the client's BackchannelLogoutURI
	Sub, SID string // claims of the logout token
	Status   int    // HTTP status of the last attempt; 0 when no response came
	Err      string // "" when the client answered 2xx
}

// logoutNotice is a logout token to send once the provider's mutex is released.
type logoutNotice struct {
	clientID, uri, sub, sid string
}

// backchannel sends logout tokens and keeps track of them.
type backchannel struct {
	client *http.Client

	mu sync.Mutex
	// wg counts the deliveries started since the last WaitBackchannel began.
	// Each WaitBackchannel replaces it, so that no Add ever happens on a
	// WaitGroup someone is waiting on; the replacement waits for the old
	// one, so waiting on the current one covers every earlier delivery.
	wg         *sync.WaitGroup
	deliveries []Delivery
}

func newBackchannel(c *http.Client) *backchannel {
	if c == nil {
		c = &http.Client{
			Timeout: backchannelTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	return &backchannel{client: c, wg: new(sync.WaitGroup)}
}

// notifyLocked returns the logout notices for the clients of an ending
// session that registered a back-channel logout URI, by client ID.
func (p *Provider) notifyLocked(s *loginSession) []logoutNotice {
	var out []logoutNotice
	for _, id := range slices.Sorted(maps.Keys(s.clients)) {
		if c := p.clients[id]; c != nil && c.BackchannelLogoutURI != "" {
			out = append(out, logoutNotice{clientID: id, uri: c.BackchannelLogoutURI, sub: s.sub, sid: s.sid})
		}
	}
	return out
}

// sendLogouts delivers logout tokens in the background. Callers must not
// hold p.mu.
func (p *Provider) sendLogouts(notices []logoutNotice) {
	for _, n := range notices {
		p.bc.mu.Lock()
		wg := p.bc.wg
		wg.Add(1)
		p.bc.mu.Unlock()
		go func() {
			defer wg.Done()
			p.deliver(n)
		}()
	}
}

// deliver posts a logout token to n.uri, retrying once on failure, and
// records the outcome.
func (p *Provider) deliver(n logoutNotice) {
	d := Delivery{ClientID: n.clientID, URI: n.uri, Sub: n.sub, SID: n.sid}
	for attempt := 1; attempt <= 2; attempt++ {
		if attempt > 1 {
			time.Sleep(backchannelRetryDelay)
		}
		// A fresh token (and jti) per attempt: a receiver that recorded the
		// first jti before failing would refuse it as a replay.
		status, err := p.postLogoutToken(n)
		d.Status, d.Err = status, ""
		if err != nil {
			d.Err = err.Error()
		}
		attrs := []any{"client_id", n.clientID, "uri", n.uri, "sub", n.sub, "sid", n.sid, "status", status, "attempt", attempt}
		if err == nil {
			p.log.Info("idp: back-channel logout delivered", attrs...)
			break
		}
		p.log.Warn("idp: back-channel logout failed", append(attrs, "err", err)...)
	}
	p.bc.mu.Lock()
	p.bc.deliveries = append(p.bc.deliveries, d)
	if k := len(p.bc.deliveries) - maxDeliveries; k > 0 {
		p.bc.deliveries = slices.Delete(p.bc.deliveries, 0, k)
	}
	p.bc.mu.Unlock()
}

// postLogoutToken makes one delivery attempt. Errors never contain the token.
func (p *Provider) postLogoutToken(n logoutNotice) (int, error) {
	tok, err := p.SignLogoutToken(n.clientID, n.sub, n.sid)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), backchannelTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.uri,
		strings.NewReader(url.Values{"logout_token": {tok}}.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.bc.client.Do(req)
	if err != nil {
		// The token is in the body, never in the URL the error names.
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxReceiverBody))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, errors.New("status " + strconv.Itoa(resp.StatusCode))
	}
	return resp.StatusCode, nil
}

// WaitBackchannel blocks until every back-channel logout delivery started
// before the call has finished, retries included. Deliveries are bounded
// by their timeouts, so it returns within about twice that.
func (p *Provider) WaitBackchannel() {
	p.bc.mu.Lock()
	old := p.bc.wg
	next := new(sync.WaitGroup)
	next.Add(1)
	go func() {
		old.Wait()
		next.Done()
	}()
	p.bc.wg = next
	p.bc.mu.Unlock()
	old.Wait()
}

// BackchannelDeliveries returns the finished back-channel logout
// deliveries (at most the latest 10000), in the order they finished.
func (p *Provider) BackchannelDeliveries() []Delivery {
	p.bc.mu.Lock()
	defer p.bc.mu.Unlock()
	return slices.Clone(p.bc.deliveries)
}
