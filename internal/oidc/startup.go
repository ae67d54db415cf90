package oidc

import (
	"context"
	"errors"
	"time"
)

// Start runs discovery in the background as Run does, and returns a channel
// that receives the outcome of the first attempt (nil when it succeeded)
// and is then closed. A caller that must not start with a provider unable
// to serve its configuration stops when that outcome wraps ErrUnfit; a
// provider that is down at the first attempt, or that is unfit only at a
// later one, leaves the client not ready and retrying, each unfit attempt
// logged at error level.
func (c *Client) Start(ctx context.Context) <-chan error {
	first := make(chan error, 1)
	go c.run(ctx, func(err error) {
		first <- err
		close(first)
	})
	return first
}

// run is Run; first, when set, is told the first attempt's outcome.
func (c *Client) run(ctx context.Context, first func(error)) {
	backoff := time.Second
	for {
		err := c.Discover(ctx)
		if first != nil {
			first(err)
			first = nil
		}
		if err == nil {
			c.log.Info("identity provider discovered", "issuer", c.opts.Issuer)
			return
		}
		if errors.Is(err, ErrUnfit) {
			c.log.Error("identity provider discovery failed: the provider does not support what the configuration requires; not ready until it does", "issuer", c.opts.Issuer, "error", err, "retry_in", backoff.String())
		} else {
			c.log.Warn("identity provider discovery failed; retrying", "issuer", c.opts.Issuer, "error", err, "retry_in", backoff.String())
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, time.Minute)
	}
}
