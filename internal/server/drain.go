package server

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cloakroom/cloakroom/internal/httpx"
)

// drainingReady answers /readyz with 503 and the check "draining" once
// draining is set, before any other check runs, so that load balancers
// and Kubernetes take the instance out while it still serves; everything
// else goes to next.
func drainingReady(draining *atomic.Bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() && r.URL.Path == "/readyz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			httpx.JSON(w, http.StatusServiceUnavailable, map[string]any{
				"ready":  false,
				"checks": map[string]string{"draining": "shutting down"},
			})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// delayShutdown is shutdown_delay: the listener keeps accepting and
// serving for delay while /readyz already answers 503 (see drainingReady),
// so that load balancers stop sending before the listener closes; idle
// keep-alive connections stay open until then, as closing one a load
// balancer is about to reuse fails that request. It returns early when hurry
// delivers (a second SIGTERM or SIGINT) or when a listener fails (its
// error).
func delayShutdown(delay time.Duration, hurry <-chan struct{}, errc <-chan error, log *slog.Logger) error {
	if delay <= 0 {
		return nil
	}
	log.Info("shutting down: /readyz answers 503, still serving", "shutdown_delay", delay.String())
	ctx, cancel := context.WithTimeout(context.Background(), delay)
	defer cancel()
	select {
	case <-ctx.Done():
	case <-hurry:
		log.Info("second signal: shutdown_delay cut short")
	case err := <-errc:
		return err
	}
	return nil
}
