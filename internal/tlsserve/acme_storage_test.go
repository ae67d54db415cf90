package tlsserve

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/certmagic"
)

// TestClosingStorage: a lock taken before close holds it open; after
// close nothing new is locked or written, so nothing appears in storage.
func TestClosingStorage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := &closingStorage{FileStorage: &certmagic.FileStorage{Path: dir}}
	if err := s.Lock(ctx, "issue_cert_a.example"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.TryLock(ctx, "issue_cert_b.example"); !ok || err != nil {
		t.Fatalf("TryLock: %v %v", ok, err)
	}
	if err := s.Store(ctx, "certificates/a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if s.close(0) {
		t.Fatal("close reported no lock held while two are")
	}
	if err := s.Lock(ctx, "issue_cert_c.example"); !errors.Is(err, errStorageClosed) {
		t.Errorf("Lock after close: got %v, want %v", err, errStorageClosed)
	}
	if ok, err := s.TryLock(ctx, "issue_cert_c.example"); ok || !errors.Is(err, errStorageClosed) {
		t.Errorf("TryLock after close: got %v %v, want false %v", ok, err, errStorageClosed)
	}
	if err := s.Store(ctx, "certificates/c", []byte("x")); !errors.Is(err, errStorageClosed) {
		t.Errorf("Store after close: got %v, want %v", err, errStorageClosed)
	}
	for _, name := range []string{"issue_cert_a.example", "issue_cert_b.example"} {
		if err := s.Unlock(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if !s.close(0) {
		t.Error("close reported a lock held after both were released")
	}
	locks, _ := os.ReadDir(filepath.Join(dir, "locks"))
	if len(locks) != 0 {
		t.Errorf("lock files left: %v", locks)
	}
	if _, err := os.Stat(filepath.Join(dir, "certificates", "c")); !os.IsNotExist(err) {
		t.Errorf("a write after close reached storage: %v", err)
	}
}
