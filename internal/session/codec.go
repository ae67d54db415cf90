package session

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"strings"
	"time"
)

// The sealed record of a stored session (store mode; cookie mode keeps
// JSON) is a compact binary encoding, codecVersion, which costs about 0.8
// times the bytes of the tokens it holds where the JSON of earlier
// versions cost 1.3 times:
//
//   - every string is a uvarint length and its bytes; times are a
//     presence byte, a zigzag varint of Unix seconds and a uvarint of
//     nanoseconds;
//   - each token is stored as its base64url segments decoded (a JWT
//     takes three quarters of its length) when every segment re-encodes
//     to exactly what it was, and as its bytes otherwise (an opaque
//     token), so it always loads byte for byte as it was saved;
//   - the claims are not stored when they are the ID token's: only what
//     differs from its payload (the claims a userinfo answer added or
//     changed, as a JSON object, and the names of payload claims the
//     session lacks); nor are the subject, issuer and IdP session id when
//     they are its sub, iss and sid. A load decodes the payload once, where a JSON
//     record was decoded whole, and the decoded-session cache keeps the
//     result, so the hot path never decodes at all.
//
// A record's first byte tells the encodings apart: codecVersion here, '{'
// for the JSON of earlier versions, which still loads (decodeRecord), so
// sessions stored before an upgrade keep working. Fields are in a fixed
// order and the record must end where its last field does: a new field
// means a new version.
const codecVersion = 2

// Token forms.
const (
	tokenRaw      = 0 // the token's bytes
	tokenSegments = 1 // uvarint count, then each base64url segment decoded
)

// Claims forms.
const (
	claimsNone    = 0 // nil
	claimsJSON    = 1 // a JSON object
	claimsIDToken = 2 // the ID token's payload, then an overlay and removals
)

// errRecord reports a record that does not decode; it never names the
// record's content.
var errRecord = errors.New("session: malformed session record")

// encodeRecord is the sealed plaintext of s in frontend.
func encodeRecord(frontend string, s *Session) ([]byte, error) {
	b := make([]byte, 0, 256+len(s.IDToken)+len(s.AccessToken)+len(s.RefreshToken))
	b = append(b, codecVersion)
	b = appendString(b, frontend)
	b = appendToken(b, s.IDToken)
	b = appendToken(b, s.AccessToken)
	b = appendToken(b, s.RefreshToken)
	base, _ := payloadClaims(idTokenPayload(s.IDToken))
	for _, f := range [...]struct{ v, claim string }{{s.Subject, "sub"}, {s.Issuer, "iss"}, {s.IdPSessionID, "sid"}} {
		b = appendDerived(b, f.v, base, f.claim)
	}
	b, err := appendClaims(b, s.Claims, base)
	if err != nil {
		return nil, err
	}
	for _, v := range [...]string{s.SessionState, s.LogoutID, s.TokenType, s.ClientIP, s.UserAgent} {
		b = appendString(b, v)
	}
	for _, t := range [...]time.Time{s.AccessExpiry, s.AccessObtained, s.Created, s.LastSeen, s.Expires} {
		b = appendTime(b, t)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Scopes)))
	for _, v := range s.Scopes {
		b = appendString(b, v)
	}
	b = appendString(b, string(s.DPoPKey))
	return b, nil
}

// decodeRecord decodes a sealed plaintext of either encoding into a new
// Session and the name of its frontend.
func decodeRecord(plain []byte) (*Session, string, error) {
	if len(plain) > 0 && plain[0] == '{' {
		rec := storedSession{Session: new(Session)}
		if err := json.Unmarshal(plain, &rec); err != nil {
			return nil, "", errRecord
		}
		return rec.Session, rec.Frontend, nil
	}
	if len(plain) == 0 || plain[0] != codecVersion {
		return nil, "", errRecord
	}
	d := decoder{b: plain[1:]}
	s := new(Session)
	frontend := d.string()
	var payload []byte
	s.IDToken, payload = d.token()
	s.AccessToken, _ = d.token()
	s.RefreshToken, _ = d.token()
	base, _ := payloadClaims(payload)
	s.Subject = d.derived(base, "sub")
	s.Issuer = d.derived(base, "iss")
	s.IdPSessionID = d.derived(base, "sid")
	s.Claims = d.claims(base) // last to read base: it may become the claims
	for _, p := range [...]*string{&s.SessionState, &s.LogoutID, &s.TokenType, &s.ClientIP, &s.UserAgent} {
		*p = d.string()
	}
	for _, p := range [...]*time.Time{&s.AccessExpiry, &s.AccessObtained, &s.Created, &s.LastSeen, &s.Expires} {
		*p = d.time()
	}
	if n := d.uvarint(); n > 0 && n <= uint64(len(d.b)) {
		s.Scopes = make([]string, n)
		for i := range s.Scopes {
			s.Scopes[i] = d.string()
		}
	} else if n > 0 {
		d.fail()
	}
	if k := d.bytes(); len(k) > 0 {
		s.DPoPKey = bytes.Clone(k)
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, "", errRecord
	}
	return s, frontend, nil
}

// appendDerived appends v, or only a zero when it is the ID token's string
// claim of that name (the subject, issuer and IdP session id usually are):
// uvarint 0 is the claim, n+1 a string of n bytes.
func appendDerived(b []byte, v string, base map[string]any, claim string) []byte {
	if c, ok := base[claim].(string); ok && c == v && v != "" {
		return append(b, 0)
	}
	return append(binary.AppendUvarint(b, uint64(len(v))+1), v...)
}

func appendString(b []byte, v string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

// appendToken appends tok in its most compact exact form.
func appendToken(b []byte, tok string) []byte {
	if !segmented(tok) {
		return appendString(append(b, tokenRaw), tok)
	}
	b = append(b, tokenSegments)
	b = binary.AppendUvarint(b, uint64(strings.Count(tok, ".")+1))
	for seg := range strings.SplitSeq(tok, ".") {
		b = binary.AppendUvarint(b, uint64(base64.RawURLEncoding.DecodedLen(len(seg))))
		b, _ = base64.RawURLEncoding.AppendDecode(b, []byte(seg)) // checked by segmented
	}
	return b
}

// segmented reports whether tok is dot-separated unpadded base64url
// segments that each re-encode to exactly themselves: only the alphabet
// (the decoder would skip a newline), a possible length, and zero bits
// after the last byte's (the decoder would ignore others).
func segmented(tok string) bool {
	if tok == "" {
		return false
	}
	for seg := range strings.SplitSeq(tok, ".") {
		if len(seg)%4 == 1 {
			return false
		}
		var last byte
		for i := range len(seg) {
			v := b64url[seg[i]]
			if v == 0xff {
				return false
			}
			last = v
		}
		switch len(seg) % 4 {
		case 2:
			if last&0x0f != 0 {
				return false
			}
		case 3:
			if last&0x03 != 0 {
				return false
			}
		}
	}
	return true
}

// b64url maps each base64url character to its value, every other byte to
// 0xff.
var b64url = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// idTokenPayload is the decoded payload (second segment) of a JWS ID token,
// or nil.
func idTokenPayload(tok string) []byte {
	if strings.Count(tok, ".") != 2 || !segmented(tok) {
		return nil
	}
	_, rest, _ := strings.Cut(tok, ".")
	seg, _, _ := strings.Cut(rest, ".")
	p, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return nil
	}
	return p
}

// payloadClaims decodes an ID token payload as the login decoded it
// (go-oidc's IDToken.Claims: encoding/json into a map).
func payloadClaims(payload []byte) (map[string]any, bool) {
	if payload == nil {
		return nil, false
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil || c == nil {
		return nil, false
	}
	return c, true
}

// appendClaims appends claims, relative to base, the ID token's claims,
// when there is one.
func appendClaims(b []byte, claims, base map[string]any) ([]byte, error) {
	if claims == nil {
		return append(b, claimsNone), nil
	}
	if base == nil {
		j, err := json.Marshal(claims)
		if err != nil {
			return nil, err
		}
		return appendString(append(b, claimsJSON), string(j)), nil
	}
	var overlay map[string]any
	for k, v := range claims {
		if bv, ok := base[k]; !ok || !reflect.DeepEqual(bv, v) {
			if overlay == nil {
				overlay = make(map[string]any)
			}
			overlay[k] = v
		}
	}
	var removed []string
	for k := range base {
		if _, ok := claims[k]; !ok {
			removed = append(removed, k)
		}
	}
	b = append(b, claimsIDToken)
	if overlay == nil {
		b = append(b, 0)
	} else {
		j, err := json.Marshal(overlay)
		if err != nil {
			return nil, err
		}
		b = appendString(b, string(j))
	}
	b = binary.AppendUvarint(b, uint64(len(removed)))
	for _, k := range removed {
		b = appendString(b, k)
	}
	return b, nil
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// decoder reads a record; the first malformed field sets err, and every
// later read returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() { d.err, d.b = errRecord, nil }

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// bytes returns the next length-prefixed field, aliasing the record.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

// token decodes a token and returns, for a three-segment one, its decoded
// second segment (an ID token's payload), aliasing the record.
func (d *decoder) token() (string, []byte) {
	switch d.byte() {
	case tokenRaw:
		return d.string(), nil
	case tokenSegments:
		n := d.uvarint()
		if n == 0 || n > uint64(len(d.b)) {
			d.fail()
			return "", nil
		}
		var sb strings.Builder
		var payload []byte
		for i := range n {
			seg := d.bytes()
			if i == 1 && n == 3 {
				payload = seg
			}
			if i > 0 {
				sb.WriteByte('.')
			}
			sb.Grow(base64.RawURLEncoding.EncodedLen(len(seg)))
			var buf [512]byte
			for len(seg) > 0 { // through a stack buffer: no allocation per segment
				c := seg[:min(len(seg), 384)]
				seg = seg[len(c):]
				sb.Write(base64.RawURLEncoding.AppendEncode(buf[:0], c))
			}
		}
		return sb.String(), payload
	}
	d.fail()
	return "", nil
}

// claims decodes the claims relative to base, the ID token's claims,
// which it takes over and changes.
func (d *decoder) claims(base map[string]any) map[string]any {
	switch d.byte() {
	case claimsNone:
		return nil
	case claimsJSON:
		var c map[string]any
		if err := json.Unmarshal(d.bytes(), &c); err != nil {
			d.fail()
		}
		return c
	case claimsIDToken:
		if base == nil {
			d.fail()
			return nil
		}
		c := base
		if overlay := d.bytes(); len(overlay) > 0 {
			var o map[string]any
			if err := json.Unmarshal(overlay, &o); err != nil {
				d.fail()
			}
			maps.Copy(c, o)
		}
		for n := d.uvarint(); n > 0 && d.err == nil; n-- {
			delete(c, d.string())
		}
		return c
	}
	d.fail()
	return nil
}

// derived decodes what appendDerived wrote.
func (d *decoder) derived(base map[string]any, claim string) string {
	n := d.uvarint()
	if n == 0 {
		c, ok := base[claim].(string)
		if !ok {
			d.fail()
		}
		return c
	}
	if n-1 > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	v := string(d.b[:n-1])
	d.b = d.b[n-1:]
	return v
}

func (d *decoder) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
		sec, n := binary.Varint(d.b)
		if n <= 0 {
			d.fail()
			return time.Time{}
		}
		d.b = d.b[n:]
		nsec := d.uvarint()
		if nsec >= 1e9 {
			d.fail()
			return time.Time{}
		}
		return time.Unix(sec, int64(nsec))
	}
	d.fail()
	return time.Time{}
}
