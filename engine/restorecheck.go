package engine

import (
	"bytes"
	"context"
	"os"

	"github.com/cairn-cjo/cairn/state"
)

// RestoreDigestEnv names the environment variable that, set to any value,
// makes every restore log a digest of the state it rebuilt, for the fault
// campaign's per-recovery state check (cmd/processor's checker test
// compares each with a crash-free run stopped at the same input offset). It
// is read once at start-up; unset (the default) it costs nothing. Set, each
// restore also scans the partition's key range once and asks the group
// coordinator for its committed offsets.
const RestoreDigestEnv = "CAIRN_RESTORE_DIGEST"

// restoreDigestOn is RestoreDigestEnv's value at start-up.
var restoreDigestOn = os.Getenv(RestoreDigestEnv) != ""

// logRestoreDigest logs, if RestoreDigestEnv is set, "restore digest" with
// partition p, the input offset its restored state stands at (the group's
// committed offset, committed in the same transactions as the changelog
// that was replayed) and a digest of p's key range but its marker (whose
// changelog offset depends on how many transactions aborted). Errors are
// logged, not returned: the check is for tests and must not change how
// the engine runs.
func (e *Engine) logRestoreDigest(ctx context.Context, p int32) {
	if !restoreDigestOn {
		return
	}
	offset := int64(0)
	offs, err := e.adm.FetchOffsets(ctx, e.cfg.AppID)
	if err == nil {
		if o, ok := offs.Lookup(e.cfg.InputTopic, p); ok && o.Err != nil {
			err = o.Err
		} else if ok && o.At > 0 {
			offset = o.At
		}
	}
	pre, marker := state.PartitionPrefix(p), state.MetaKey(p, markerKeyName)
	digest, keys, derr := state.Digest(e.store, pre, state.PrefixEnd(pre), func(k, _ []byte) bool { return bytes.Equal(k, marker) })
	if err != nil || derr != nil {
		e.log.Warn("restore digest failed", "partition", p, "error", err, "digest_error", derr)
		return
	}
	e.log.Info("restore digest", "partition", p, "input_offset", offset, "digest", digest, "keys", keys)
}
