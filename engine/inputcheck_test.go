package engine

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/internal/broker"
	"github.com/cairn-cjo/cairn/state"
)

// TestRestoreMeetsCommittedInputOffset checks the restore's second half,
// catchUpInput, on a broker: a changelog whose committed state stands at
// input offset 10 while the group's committed offset is 20. What happens
// depends on what the changelog holds past its last stable offset:
//   - a transaction with the state at 20 that commits a moment later (on
//     Kafka, a commit whose changelog marker lands after the group's
//     offsets became stable): restore waits for it and includes it;
//   - the same transaction aborted, or nothing at all (offsets moved by
//     hand): restore accepts the state at 10;
//   - a transaction that never ends: restore gives up with an error
//     naming the records in the way, and the session is rebuilt.
func TestRestoreMeetsCommittedInputOffset(t *testing.T) {
	cases := []struct {
		name    string
		pending string // "commit", "abort", "open" or "" (no transaction)
		want    int64  // InputOffset of the restored marker
		value   string // the restored value of key "k"
		wantErr string
	}{
		{name: "late commit is waited for", pending: "commit", want: 20, value: "v20"},
		{name: "aborted transaction is not", pending: "abort", want: 10, value: "v10"},
		{name: "offsets moved by hand", want: 10, value: "v10"},
		{name: "transaction never ends", pending: "open", wantErr: "has uncommitted records"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, addrs := newRestoreEngine(t)
			ctx := context.Background()
			changelog := e.cfg.ChangelogTopic()
			key := state.MetaKey(0, "k")
			stateAt := func(in int64, v string) []*kgo.Record {
				return []*kgo.Record{
					{Topic: changelog, Partition: 0, Key: key, Value: []byte(v)},
					{Topic: changelog, Partition: 0, Key: state.MetaKey(0, inputKeyName), Value: binary.BigEndian.AppendUint64(nil, uint64(in))},
				}
			}
			txnProduce(t, addrs, "first", stateAt(10, "v10"), true)
			var late *kgo.Client
			if tc.pending != "" {
				late = txnProduce(t, addrs, "late", stateAt(20, "v20"), false)
			}
			commitInput(t, e, 20)

			type result struct {
				m   marker
				err error
			}
			done := make(chan result, 1)
			go func() {
				m, err := e.restore(ctx, 0)
				done <- result{m, err}
			}()
			if late != nil {
				select {
				case r := <-done:
					t.Fatalf("restore returned (%+v, %v) with a transaction pending on the changelog", r.m, r.err)
				case <-time.After(500 * time.Millisecond):
				}
				switch tc.pending {
				case "commit", "abort":
					if err := late.EndTransaction(ctx, kgo.TransactionEndTry(tc.pending == "commit")); err != nil {
						t.Fatal(err)
					}
				}
			}
			var r result
			select {
			case r = <-done:
			case <-time.After(e.inputCatchUp() + 10*time.Second):
				t.Fatal("restore did not return")
			}
			if tc.wantErr != "" {
				if r.err == nil || !strings.Contains(r.err.Error(), tc.wantErr) {
					t.Fatalf("restore error %v, want one saying %q", r.err, tc.wantErr)
				}
				return
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.m.InputOffset != tc.want {
				t.Errorf("restored state stands at input offset %d, want %d", r.m.InputOffset, tc.want)
			}
			if v, err := e.store.Get(key); err != nil || string(v) != tc.value {
				t.Errorf("restored k = %q (%v), want %q", v, err, tc.value)
			}
		})
	}
}

// newRestoreEngine returns an engine (not running) with a store, an admin
// client and its topics on a fresh broker, for calling restore directly.
func newRestoreEngine(t *testing.T) (*Engine, []string) {
	t.Helper()
	b, err := broker.Start(broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	st, err := state.OpenPebble(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := Config{Brokers: b.Addrs(), AppID: "restore", InputTopic: "events", InstanceID: "a",
		TransactionTimeout: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	e, err := New(cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	e.admCl, e.adm = cl, kadm.NewClient(cl)
	for _, topic := range []string{e.cfg.InputTopic, e.cfg.ChangelogTopic()} {
		if _, err := e.adm.CreateTopic(context.Background(), 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	return e, b.Addrs()
}

// txnProduce produces rs in a transaction of its own transactional id and
// commits it if commit is set; otherwise it returns the client with the
// transaction open (its records on the broker, past the last stable
// offset).
func txnProduce(t *testing.T, addrs []string, id string, rs []*kgo.Record, commit bool) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.TransactionalID(id), kgo.TransactionTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx := context.Background()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if commit {
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	return cl
}

// commitInput commits offset at for input partition 0 in the engine's
// group, outside any transaction.
func commitInput(t *testing.T, e *Engine, at int64) {
	t.Helper()
	var os kadm.Offsets
	os.AddOffset(e.cfg.InputTopic, 0, at, -1)
	resp, err := e.adm.CommitOffsets(context.Background(), e.cfg.AppID, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
}
