package engine

import (
	"bytes"
	"os"

	"github.com/cairn-cjo/cairn/state"
)

// RestoreDigestEnv names the environment variable that, set to any value,
// makes every restore log a digest of the state it rebuilt, for the fault
// campaign's per-recovery state check (cmd/processor's checker test
// compares each with a crash-free run stopped at the same input offset). It
// is read once at start-up; unset (the default) it costs nothing. Set, each
// restore also scans the partition's key range once.
const RestoreDigestEnv = "CAIRN_RESTORE_DIGEST"

// restoreDigestOn is RestoreDigestEnv's value at start-up.
var restoreDigestOn = os.Getenv(RestoreDigestEnv) != ""

// logRestoreDigest logs, if RestoreDigestEnv is set, "restore digest" with
// partition p, offset, the input offset its restored state stands at (the
// group's stable committed offset, which restore checked the state
// against) and a digest of p's key range but its marker (whose
// changelog offset depends on how many transactions aborted). Errors are
// logged, not returned: the check is for tests and must not change how
// the engine runs.
func (e *Engine) logRestoreDigest(p int32, offset int64) {
	if !restoreDigestOn {
		return
	}
	pre, marker := state.PartitionPrefix(p), state.MetaKey(p, markerKeyName)
	digest, keys, derr := state.Digest(e.store, pre, state.PrefixEnd(pre), func(k, _ []byte) bool { return bytes.Equal(k, marker) })
	if derr != nil {
		e.log.Warn("restore digest failed", "partition", p, "error", derr)
		return
	}
	e.log.Info("restore digest", "partition", p, "input_offset", offset, "digest", digest, "keys", keys)
}
