package tlsserve

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// pollInterval is how often a static source looks at its files. Reading
// two small files every few seconds costs nothing, sees every kind of
// replacement (written in place, renamed over, a Kubernetes Secret's
// symlink swap) and needs no file-system notification.
var pollInterval = 5 * time.Second

// static serves the certificate of cert_file and key_file.
type static struct {
	certFile, keyFile string
	log               *slog.Logger
	cert              atomic.Pointer[tls.Certificate]

	mu sync.Mutex // serializes refresh
	// served is the digest of the files' contents served; failed that of
	// the last contents that did not load, so that a bad pair is logged
	// once, not at every poll.
	served, failed [sha256.Size]byte

	stop context.CancelFunc
	done chan struct{}
}

var _ source = (*static)(nil)

// newStatic loads the pair, then watches the files until ctx ends or
// close.
func newStatic(ctx context.Context, certFile, keyFile string, log *slog.Logger) (*static, error) {
	s := &static{certFile: certFile, keyFile: keyFile, log: log, done: make(chan struct{})}
	certPEM, keyPEM, err := s.read()
	if err != nil {
		return nil, err
	}
	cert, err := s.load(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	s.cert.Store(cert)
	s.served = digest(certPEM, keyPEM)
	s.logLoaded(cert)
	ctx, s.stop = context.WithCancel(ctx)
	go s.watch(ctx)
	return s, nil
}

func (s *static) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cert.Load(), nil
}

func (s *static) nextProtos() []string { return nil }

func (s *static) httpHandler(next http.Handler) http.Handler { return next }

func (s *static) reload() error { return s.refresh(true) }

func (s *static) close() error {
	s.stop()
	<-s.done
	return nil
}

func (s *static) watch(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.refresh(false)
		}
	}
}

// refresh loads the files when their contents differ from those served.
// A pair that does not load (a half-written replacement, a key of another
// certificate) keeps the certificate served and is logged: at each
// explicit reload, else once per contents.
func (s *static) refresh(explicit bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	certPEM, keyPEM, err := s.read()
	sum := digest(certPEM, keyPEM)
	if err != nil {
		sum = digest([]byte(err.Error()), nil)
	}
	if err == nil && sum == s.served {
		return nil
	}
	var cert *tls.Certificate
	if err == nil {
		cert, err = s.load(certPEM, keyPEM)
	}
	if err != nil {
		if explicit || sum != s.failed {
			s.log.Error("tls certificate not reloaded; the served certificate stays", "error", err)
		}
		s.failed = sum
		return err
	}
	s.cert.Store(cert)
	s.served, s.failed = sum, [sha256.Size]byte{}
	s.logLoaded(cert)
	return nil
}

func (s *static) read() (certPEM, keyPEM []byte, err error) {
	if certPEM, err = os.ReadFile(s.certFile); err != nil {
		return nil, nil, fmt.Errorf("tls certificate: %w", err)
	}
	if keyPEM, err = os.ReadFile(s.keyFile); err != nil {
		return nil, nil, fmt.Errorf("tls key: %w", err)
	}
	return certPEM, keyPEM, nil
}

// load parses the pair. The errors of X509KeyPair are fixed texts: they
// never hold key material.
func (s *static) load(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls certificate %q with key %q: %s", s.certFile, s.keyFile, strings.TrimPrefix(err.Error(), "tls: "))
	}
	return &cert, nil
}

func (s *static) logLoaded(cert *tls.Certificate) {
	leaf := cert.Leaf
	if leaf == nil {
		return
	}
	names := leaf.DNSNames
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	level := slog.LevelInfo
	if time.Now().After(leaf.NotAfter) {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "tls certificate loaded", "file", s.certFile, "names", names, "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
}

// digest identifies the contents of a pair.
func digest(certPEM, keyPEM []byte) [sha256.Size]byte {
	c, k := sha256.Sum256(certPEM), sha256.Sum256(keyPEM)
	return sha256.Sum256(append(c[:], k[:]...))
}
