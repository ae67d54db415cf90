package httpx

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// Errors of CheckDecodedPath; their text is safe to send to the client.
var (
	ErrPathNotUTF8       = errors.New("path must be valid UTF-8 once decoded")
	ErrPathDoubleEncoded = errors.New("path must not contain a double-encoded dot, slash, backslash or NUL")
)

// CheckDecodedPath checks p, a path already percent-decoded once (as
// url.URL.Path is), for what an upstream that decodes it again, or decodes
// leniently, could read differently than the gateway did:
//
//   - bytes that are not valid UTF-8, which include the overlong forms
//     %c0%ae, %e0%80%ae ("."), %c0%af ("/") that lenient decoders accept;
//   - an escape left in p that decodes to ".", "/", "\" or NUL: in the
//     request line a percent-encoded "%" before an encoded dot, slash or
//     backslash, such as %252e, %252F, %25%32%65 (decoded once: %2e, %2F,
//     %2e), at any depth (%25252e), and IIS's %u002e form;
//   - escapes left in p that decode to bytes which are not valid UTF-8
//     (%25c0%25ae).
//
// Other escapes left in p, such as %2520 (a literal "%20"), are allowed.
// Characters that only Unicode normalisation turns into a dot or a slash
// (fullwidth U+FF0E, U+FF0F) are valid UTF-8 and allowed.
//
// An ordinary path, one with no "%" once decoded, costs one pass over its
// bytes and no allocation.
func CheckDecodedPath(p string) error {
	if !utf8.ValidString(p) {
		return ErrPathNotUTF8
	}
	if strings.IndexByte(p, '%') < 0 {
		return nil
	}
	return checkDecodedAgain(p)
}

// checkDecodedAgain decodes p as often as it still holds escapes, as a
// lenient decoder would: malformed escapes stay as they are.
func checkDecodedAgain(p string) error {
	for strings.IndexByte(p, '%') >= 0 {
		b := make([]byte, 0, len(p))
		changed := false
		for i := 0; i < len(p); i++ {
			c := p[i]
			if c != '%' {
				b = append(b, c)
				continue
			}
			switch {
			case i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]):
				c = unhex(p[i+1])<<4 | unhex(p[i+2])
				if forbiddenDecoded(rune(c)) {
					return ErrPathDoubleEncoded
				}
				b = append(b, c)
				i += 2
			case i+5 < len(p) && (p[i+1] == 'u' || p[i+1] == 'U') && isHex(p[i+2]) && isHex(p[i+3]) && isHex(p[i+4]) && isHex(p[i+5]):
				r := rune(unhex(p[i+2]))<<12 | rune(unhex(p[i+3]))<<8 | rune(unhex(p[i+4]))<<4 | rune(unhex(p[i+5]))
				if forbiddenDecoded(r) {
					return ErrPathDoubleEncoded
				}
				b = utf8.AppendRune(b, r)
				i += 5
			default:
				b = append(b, c)
				continue
			}
			changed = true
		}
		if !changed {
			return nil
		}
		if !utf8.Valid(b) {
			return ErrPathNotUTF8
		}
		p = string(b)
	}
	return nil
}

func forbiddenDecoded(r rune) bool {
	return r == '.' || r == '/' || r == '\\' || r == 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
