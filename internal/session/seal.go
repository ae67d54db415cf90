package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// MinKeyLen is the shortest session key accepted.
const MinKeyLen = 32

const sealVersion = 1

// sealer seals with the first key and opens with any. Each configured key
// yields two independent subkeys through HKDF: one for AES-256-GCM and one
// for HMAC-SHA256, which maps ticket ids and tags to store keys.
type sealer struct {
	keys []sealKey
}

type sealKey struct {
	aead cipher.AEAD
	mac  []byte
	// macs recycles keyed HMAC states: Reset returns one to its keyed
	// start, so a lookup allocates nothing but its result.
	macs *sync.Pool
}

func newSealer(keys [][]byte) (*sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("session: no keys")
	}
	s := &sealer{}
	for i, k := range keys {
		if len(k) < MinKeyLen {
			return nil, fmt.Errorf("session: key %d is %d bytes, need at least %d", i, len(k), MinKeyLen)
		}
		ek, err := hkdf.Key(sha256.New, k, nil, "cloakroom session seal v1", 32)
		if err != nil {
			return nil, err
		}
		mk, err := hkdf.Key(sha256.New, k, nil, "cloakroom session lookup v1", 32)
		if err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(ek)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		s.keys = append(s.keys, sealKey{aead: aead, mac: mk,
			macs: &sync.Pool{New: func() any { return &macState{h: hmac.New(sha256.New, mk)} }}})
	}
	return s, nil
}

// lookup maps a ticket id (or a tag) to a store key under key i, within
// frontend's scope. The HMAC's input is prefix 0x00 v without a frontend,
// as before frontends existed, so stored sessions and tags keep their
// keys; with one it is prefix 0x01 frontend 0x00 v. A frontend name holds
// no NUL (see Options.Frontend), so no input of one scope equals an input
// of another: two frontends over one store never share a key or a tag.
func (s *sealer) lookup(i int, prefix, frontend, v string) string {
	pool := s.keys[i].macs
	st := pool.Get().(*macState)
	st.h.Reset()
	st.in = append(st.in[:0], prefix...)
	if frontend == "" {
		st.in = append(st.in, 0)
	} else {
		st.in = append(append(append(st.in, 1), frontend...), 0)
	}
	st.in = append(st.in, v...)
	st.h.Write(st.in)
	st.sum = st.h.Sum(st.sum[:0])
	st.enc = base64.RawURLEncoding.AppendEncode(st.enc[:0], st.sum)
	var b strings.Builder
	b.Grow(len(prefix) + len(st.enc))
	b.WriteString(prefix)
	b.Write(st.enc)
	if len(st.in) <= 256 { // keep no large buffers alive
		pool.Put(st)
	}
	return b.String()
}

// macState is one keyed HMAC with its scratch buffers, recycled through
// sealKey.macs.
type macState struct {
	h            hash.Hash
	in, sum, enc []byte
}

// seal encrypts plain with the first key; aad binds it to its store key.
func (s *sealer) seal(plain, aad []byte) []byte {
	k := s.keys[0].aead
	out := make([]byte, 1, 1+k.NonceSize()+len(plain)+k.Overhead())
	out[0] = sealVersion
	nonce := make([]byte, k.NonceSize())
	rand.Read(nonce)
	out = append(out, nonce...)
	return k.Seal(out, nonce, plain, aad)
}

// open decrypts with key i.
func (s *sealer) open(i int, sealed, aad []byte) ([]byte, error) {
	k := s.keys[i].aead
	if len(sealed) < 1+k.NonceSize()+k.Overhead() || sealed[0] != sealVersion {
		return nil, errors.New("session: malformed sealed value")
	}
	nonce := sealed[1 : 1+k.NonceSize()]
	return k.Open(nil, nonce, sealed[1+k.NonceSize():], aad)
}

// openAny tries every key, for values that carry no key hint (cookies).
func (s *sealer) openAny(sealed, aad []byte) ([]byte, error) {
	for i := range s.keys {
		if p, err := s.open(i, sealed, aad); err == nil {
			return p, nil
		}
	}
	return nil, errors.New("session: cannot open sealed value")
}

// newID returns a fresh 256-bit random ticket id, base64url encoded.
func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// validID reports whether v looks like a ticket id, so garbage never reaches
// the store.
func validID(v string) bool {
	if len(v) != 43 {
		return false
	}
	for i := range len(v) {
		if c := v[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
