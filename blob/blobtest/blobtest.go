// Package blobtest is the conformance suite every lodestone.BlobStore passes.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

// Run runs the suite against a fresh, empty store from open for each case.
func Run(t *testing.T, open func(t *testing.T) lodestone.BlobStore) {
	ctx := context.Background()
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

	t.Run("PutOpenDedup", func(t *testing.T) {
		s := open(t)
		data := bytes.Repeat([]byte("firmware"), 100_000)
		ref, existed, err := s.Put(ctx, bytes.NewReader(data), 0)
		if err != nil || existed {
			t.Fatalf("Put = %v, existed %v", err, existed)
		}
		if ref.SHA256 != sum(data) || ref.Size != int64(len(data)) {
			t.Fatalf("ref = %+v", ref)
		}
		ref2, existed, err := s.Put(ctx, bytes.NewReader(data), 0)
		if err != nil || !existed || ref2 != ref {
			t.Fatalf("second Put = %+v %v %v, want the same ref, existed", ref2, existed, err)
		}
		b, err := s.Open(ctx, ref.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if b.Ref() != ref {
			t.Fatalf("Open ref = %+v", b.Ref())
		}
		if _, err := b.Seek(int64(len(data)-8), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		tail, _ := io.ReadAll(b)
		if string(tail) != "firmware" {
			t.Fatalf("tail after seek = %q", tail)
		}
		if st, err := s.Stat(ctx, ref.SHA256); err != nil || st != ref {
			t.Fatalf("Stat = %+v %v", st, err)
		}
	})

	t.Run("TooLargeStoresNothing", func(t *testing.T) {
		s := open(t)
		data := make([]byte, 1001)
		_, _, err := s.Put(ctx, bytes.NewReader(data), 1000)
		if lodestone.ErrorCode(err) != lodestone.ETOOLARGE {
			t.Fatalf("Put over limit = %v, want too_large", err)
		}
		if _, err := s.Stat(ctx, sum(data)); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
			t.Fatalf("Stat after refused Put = %v, want not_found", err)
		}
		if _, _, err := s.Put(ctx, bytes.NewReader(data[:1000]), 1000); err != nil {
			t.Fatalf("Put at the limit = %v", err)
		}
	})

	t.Run("MissingAndInvalidNames", func(t *testing.T) {
		s := open(t)
		for _, name := range []string{sum([]byte("absent")), "../../etc/passwd", "", "ABC"} {
			if _, err := s.Open(ctx, name); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
				t.Errorf("Open(%q) = %v, want not_found", name, err)
			}
			if _, err := s.Stat(ctx, name); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
				t.Errorf("Stat(%q) = %v, want not_found", name, err)
			}
			if err := s.Delete(ctx, name); err != nil {
				t.Errorf("Delete(%q) = %v, want nil", name, err)
			}
		}
	})

	t.Run("WalkAndDelete", func(t *testing.T) {
		s := open(t)
		want := map[string]int64{}
		for _, d := range []string{"a", "bb", "ccc"} {
			ref, _, err := s.Put(ctx, bytes.NewReader([]byte(d)), 0)
			if err != nil {
				t.Fatal(err)
			}
			want[ref.SHA256] = ref.Size
		}
		got := map[string]int64{}
		if err := s.Walk(ctx, func(r lodestone.BlobRef) error { got[r.SHA256] = r.Size; return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("Walk saw %v, want %v", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("Walk saw %v, want %v", got, want)
			}
		}
		if err := s.Delete(ctx, sum([]byte("a"))); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Open(ctx, sum([]byte("a"))); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
			t.Fatalf("Open after Delete = %v", err)
		}
	})

	t.Run("CancelledPutStoresNothing", func(t *testing.T) {
		s := open(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, _, err := s.Put(cctx, bytes.NewReader([]byte("x")), 0); err == nil {
			t.Fatal("Put with a cancelled context succeeded")
		}
		n := 0
		s.Walk(ctx, func(lodestone.BlobRef) error { n++; return nil })
		if n != 0 {
			t.Fatalf("%d blobs after a cancelled Put", n)
		}
	})
}
