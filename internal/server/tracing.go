package server

import (
	"context"
	"net/http"
	"os"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// tracing is OpenTelemetry for one server: a provider (from the standard
// OTEL_* environment, or given by the caller), and W3C trace context
// propagation. Nothing is global.
type tracing struct {
	// enabled is false when nothing would record spans: the middleware is
	// then left out of the chain entirely.
	enabled  bool
	tp       trace.TracerProvider
	prop     propagation.TextMapPropagator
	shutdown func(context.Context) error
}

// newTracing uses tp when given; else exports over OTLP/HTTP when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set
// (the exporter reads the other OTEL_* variables itself); else traces
// nothing.
func newTracing(tp trace.TracerProvider) (*tracing, error) {
	t := &tracing{enabled: true, tp: tp, prop: propagation.TraceContext{}, shutdown: func(context.Context) error { return nil }}
	if tp != nil {
		return t, nil
	}
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		t.tp, t.enabled = noop.NewTracerProvider(), false
		return t, nil
	}
	exp, err := otlptracehttp.New(context.Background())
	if err != nil {
		return nil, err
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	t.tp, t.shutdown = sdk, sdk.Shutdown
	return t, nil
}

// handler traces inbound requests. The query string is replaced in span
// attributes: at the callback it carries the authorization code.
func (t *tracing) handler(h http.Handler) http.Handler {
	if !t.enabled {
		return h
	}
	redact := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "" {
			trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("url.query", "redacted"))
		}
		h.ServeHTTP(w, r)
	})
	return otelhttp.NewHandler(redact, "cloakroom",
		otelhttp.WithTracerProvider(t.tp), otelhttp.WithPropagators(t.prop),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }))
}

// transport traces upstream calls and sends W3C traceparent along.
func (t *tracing) transport(rt http.RoundTripper) http.RoundTripper {
	if !t.enabled {
		return rt
	}
	return otelhttp.NewTransport(rt, otelhttp.WithTracerProvider(t.tp), otelhttp.WithPropagators(t.prop))
}

// tracer names Cloakroom's own spans (token work).
func (t *tracing) tracer() trace.Tracer { return t.tp.Tracer("github.com/cloakroom/cloakroom") }
