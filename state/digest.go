package state

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Digest returns a digest of every key and value of s in [lower, upper)
// for which skip (if not nil) returns false, and the number of keys it
// covers. Two stores with the same keys and values in the range have the
// same digest, whatever their history (batches, restores, compactions).
// Cost: one scan of the range, O(bytes in it); it reads committed data
// only and, like Scan, is safe for concurrent use with writers.
func Digest(s Store, lower, upper []byte, skip func(key, value []byte) bool) (string, int, error) {
	h := sha256.New()
	keys := 0
	var n [4]byte
	err := s.Scan(lower, upper, func(k, v []byte) error {
		if skip != nil && skip(k, v) {
			return nil
		}
		keys++
		h.Write(binary.BigEndian.AppendUint32(n[:0], uint32(len(k))))
		h.Write(k)
		h.Write(binary.BigEndian.AppendUint32(n[:0], uint32(len(v))))
		h.Write(v)
		return nil
	})
	if err != nil {
		return "", 0, fmt.Errorf("digesting the store: %w", err)
	}
	return fmt.Sprintf("%x", h.Sum(nil)[:8]), keys, nil
}
