package tlsserve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"go.uber.org/zap"
)

// letsEncrypt is the directory of Let's Encrypt's production CA, tls.acme.ca's
// default.
const letsEncrypt = certmagic.LetsEncryptProductionCA

// ACME are tls.acme's settings: certificates for the hosts of Origins,
// obtained and renewed through an ACME CA by certmagic.
type ACME struct {
	// Email is the ACME account's contact address, where the CA writes
	// about expiring certificates and problems; may be empty.
	Email string
	// CA is the ACME directory URL; letsEncrypt when empty.
	CA string
	// CARoot is a PEM file of the root certificates that the CA's own
	// HTTPS chains to (a private CA such as step-ca); the system's roots
	// when empty.
	CARoot string
	// Storage is the directory that holds the ACME account, the
	// certificates and their keys, and the locks: instances that share it
	// (a shared volume) obtain each certificate once and serve the same.
	Storage string
	// AgreeTOS is the operator's agreement to the CA's terms of service;
	// New refuses ACME without it.
	AgreeTOS bool
	// HTTP01 answers HTTP-01 challenges on the redirect listener: set it
	// when tls.redirect_http is. TLS-ALPN-01 is always answered on the TLS
	// listener.
	HTTP01 bool

	// renewCheckInterval is how often certificates are checked for
	// renewal; certmagic's (10 minutes) when zero. Tests shorten it.
	renewCheckInterval time.Duration
	// noTLSALPN leaves TLS-ALPN-01 out, so that a test proves HTTP-01.
	noTLSALPN bool
}

// acmeSource serves certificates that certmagic obtains, keeps in Storage
// and renews ahead of expiry (RenewalWindowRatio: in the last third of
// their lifetime, or when the CA's renewal information says so).
//
// Management is asynchronous: New returns at once and the listener serves
// while the first certificate is obtained; until it is, handshakes for the
// host fail (a fresh fleet whose CA is unreachable still starts, answers
// on its admin listener, and gets its certificate when the CA is back;
// certmagic retries with backoff). A certificate already in Storage is
// loaded within moments of the start, without asking the CA.
type acmeSource struct {
	cfg    *certmagic.Config
	issuer *certmagic.ACMEIssuer
	cache  *certmagic.Cache
	// hold is a loopback port the gateway keeps, where certmagic's solvers
	// are pointed (see newACME).
	hold    net.Listener
	storage *closingStorage
	stop    context.CancelFunc
	done    chan struct{}
}

var _ source = (*acmeSource)(nil)

// newACME starts managing certificates for hosts.
func newACME(ctx context.Context, a ACME, hosts []string, log *slog.Logger) (*acmeSource, error) {
	if !a.AgreeTOS {
		return nil, errors.New("tls.acme: agree_tos must be true: the CA issues certificates only to accounts that agree to its terms of service")
	}
	if a.Storage == "" {
		return nil, errors.New("tls.acme: storage is required: the directory where the account and certificates are kept")
	}
	if len(hosts) == 0 {
		return nil, errors.New("tls.acme: no host to obtain a certificate for: set public_url")
	}
	if err := os.MkdirAll(a.Storage, 0o700); err != nil {
		return nil, fmt.Errorf("tls.acme.storage: %w", err)
	}
	var roots *x509.CertPool
	if a.CARoot != "" {
		pem, err := os.ReadFile(a.CARoot)
		if err != nil {
			return nil, fmt.Errorf("tls.acme.ca_root: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.acme.ca_root: %q holds no PEM certificate", a.CARoot)
		}
	}
	ca := a.CA
	if ca == "" {
		ca = letsEncrypt
	}
	// certmagic's HTTP-01 and TLS-ALPN-01 solvers start a challenge
	// server of their own on their port unless something already listens
	// there, in which case they leave the challenge to it. The gateway
	// answers challenges on its own listeners (HTTPChallengeHandler on the
	// redirect listener, GetCertificate with acme-tls/1 on the TLS
	// listener), which may not be bound yet when the first order starts:
	// the solvers are pointed at a loopback port held here instead, so
	// they never take the gateway's ports.
	hold, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tls.acme: %w", err)
	}
	go func() {
		for {
			c, err := hold.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	holdPort := hold.Addr().(*net.TCPAddr).Port

	zl := zap.New(newSlogCore(log.Handler()))
	s := &acmeSource{hold: hold, storage: &closingStorage{FileStorage: &certmagic.FileStorage{Path: a.Storage}}, done: make(chan struct{})}
	s.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return s.cfg, nil },
		RenewCheckInterval: a.renewCheckInterval,
		Logger:             zl,
	})
	s.cfg = certmagic.New(s.cache, certmagic.Config{
		Storage: s.storage,
		Logger:  zl,
		// A client without SNI (a probe by IP address) gets the first
		// host's certificate.
		DefaultServerName: hosts[0],
	})
	s.issuer = certmagic.NewACMEIssuer(s.cfg, certmagic.ACMEIssuer{
		CA:                      ca,
		Email:                   a.Email,
		Agreed:                  true,
		TrustedRoots:            roots,
		DisableHTTPChallenge:    !a.HTTP01,
		DisableTLSALPNChallenge: a.noTLSALPN,
		ListenHost:              "127.0.0.1",
		AltHTTPPort:             holdPort,
		AltTLSALPNPort:          holdPort,
		Logger:                  zl,
	})
	s.cfg.Issuers = []certmagic.Issuer{s.issuer}
	ctx, s.stop = context.WithCancel(ctx)
	if err := s.cfg.ManageAsync(ctx, hosts); err != nil {
		s.stop()
		s.cache.Stop()
		hold.Close()
		return nil, fmt.Errorf("tls.acme: %w", err)
	}
	log.Info("tls certificates managed through ACME", "ca", ca, "hosts", hosts, "storage", a.Storage, "http_01", a.HTTP01)
	go func() {
		defer close(s.done)
		<-ctx.Done()
		s.cache.Stop()
		if !s.storage.close(10 * time.Second) {
			log.Warn("tls.acme: a storage lock was still held at shutdown; another instance takes it over once it is stale", "storage", a.Storage)
		}
		hold.Close()
	}()
	return s, nil
}

// GetCertificate answers handshakes with the managed certificate, and
// TLS-ALPN-01 validations (ALPN acme-tls/1) with the challenge
// certificate, whichever instance sharing Storage started the order.
func (s *acmeSource) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cfg.GetCertificate(hello)
}

func (s *acmeSource) nextProtos() []string { return []string{acmez.ACMETLS1Protocol} }

// httpHandler answers HTTP-01 validations
// (/.well-known/acme-challenge/...) before next.
func (s *acmeSource) httpHandler(next http.Handler) http.Handler {
	return s.issuer.HTTPChallengeHandler(next)
}

// reload does nothing: certificates are renewed as they come due, and
// Storage is read when one is needed.
func (s *acmeSource) reload() error { return nil }

func (s *acmeSource) close() error {
	s.stop()
	<-s.done
	return nil
}
