package state

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestOnFatalSeesAFullDisk fills the disk under a store (every write fails
// with ENOSPC): the next commit is fatal for Pebble, and OnFatal must get a
// message naming the cause, so that the processor can exit saying why.
func TestOnFatalSeesAFullDisk(t *testing.T) {
	full := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return fmt.Errorf("injected write to %s: %w", op.Path, syscall.ENOSPC)
		}
		return nil
	})}
	var fatal string
	s, err := OpenPebble(t.TempDir(), Options{FS: errorfs.Wrap(vfs.Default, full), OnFatal: func(msg string) { fatal = msg }})
	if err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	if err := b.Set([]byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if n, ok := s.FreeBytes(); !ok || n == 0 {
		t.Errorf("FreeBytes = %d, %v on a real directory", n, ok)
	}
	full.On()
	func() {
		defer func() { _ = recover() }() // Fatalf must not return: it panics after OnFatal
		_ = b.Set([]byte("b"), []byte("2"))
		err = b.Commit()
		if err == nil {
			err = s.Sync()
		}
	}()
	if !strings.Contains(fatal, "no space left on device") && (err == nil || !strings.Contains(err.Error(), "no space left")) {
		t.Fatalf("after a write to a full disk: OnFatal got %q, error %v; want either to name ENOSPC", fatal, err)
	}
	t.Logf("OnFatal: %q, error: %v", fatal, err)
}
