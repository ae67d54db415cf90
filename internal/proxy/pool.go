package proxy

import "sync"

// BufferPool recycles httputil.ReverseProxy's 32 KiB copy buffers. Every
// route shares one; the load benchmark's bare proxy uses it too, so the
// two differ only by the chain.
type BufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (BufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (BufferPool) Put(b []byte) { buffers.Put(&b) }
