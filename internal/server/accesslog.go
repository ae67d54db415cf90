package server

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// accessEntry is one access-log line.
type accessEntry struct {
	at                  time.Time // when the response was done
	requestID           string
	frontend            string // its name, or "" for the implicit one (then omitted)
	route, method, path string
	status              int
	duration            time.Duration
	session             string // a handle prefix, or ""
}

// accessLog writes access-log lines. With a writer (Options.AccessLog,
// which `serve` points at the log stream) it encodes each line itself, in
// the shape slog's JSON handler gives it, with one pooled buffer and one
// Write: the line is written on every request, and slog's general path
// cost several µs of it. Without one, lines go through the logger.
type accessLog struct {
	w   io.Writer
	log *slog.Logger
}

func (a accessLog) write(ctx context.Context, e *accessEntry) {
	if a.w == nil {
		var attrs [8]slog.Attr
		attrs[0] = slog.String("request_id", e.requestID)
		n := 1
		if e.frontend != "" {
			attrs[n] = slog.String("frontend", e.frontend)
			n++
		}
		n += copy(attrs[n:], []slog.Attr{
			slog.String("route", e.route),
			slog.String("method", e.method),
			slog.String("path", e.path),
			slog.Int("status", e.status),
			slog.Float64("duration_ms", float64(e.duration.Microseconds())/1000),
		})
		if e.session != "" {
			attrs[n] = slog.String("session", e.session)
			n++
		}
		a.log.LogAttrs(ctx, slog.LevelInfo, "request", attrs[:n]...)
		return
	}
	bp := linePool.Get().(*[]byte)
	b := appendAccessLine((*bp)[:0], e)
	a.w.Write(b)
	if cap(b) <= 4<<10 {
		*bp = b
		linePool.Put(bp)
	}
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// appendAccessLine appends e as one JSON line.
func appendAccessLine(b []byte, e *accessEntry) []byte {
	b = append(b, `{"time":"`...)
	b = e.at.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request","request_id":`...)
	b = appendJSONString(b, e.requestID)
	if e.frontend != "" {
		b = append(b, `,"frontend":`...)
		b = appendJSONString(b, e.frontend)
	}
	b = append(b, `,"route":`...)
	b = appendJSONString(b, e.route)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, e.method)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, e.path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(e.duration.Microseconds())/1000, 'f', -1, 64)
	if e.session != "" {
		b = append(b, `,"session":`...)
		b = appendJSONString(b, e.session)
	}
	return append(b, "}\n"...)
}

// appendJSONString appends s as a JSON string. Like slog's JSON handler
// it escapes quotes, backslashes, control characters and, so that a log
// line is safe to embed in HTML or JavaScript, <, >, &, U+2028 and
// U+2029; invalid UTF-8 becomes U+FFFD. Paths are attacker-chosen.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
