package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/internal/broker"
)

// TestTransactions writes a committed, an aborted and an open transaction
// and checks what Transactions counts at each step.
func TestTransactions(t *testing.T) {
	b := Start(t, broker.Options{})
	addrs := b.Addrs()
	CreateTopic(t, addrs, "out", 2, nil)
	cl := Client(t, addrs, kgo.TransactionalID("txns-test"), kgo.DefaultProduceTopic("out"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	txn := func(n int, end kgo.TransactionEndTry, leaveOpen bool) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			// Partitions 0 and 1 alternately: every transaction spans both.
			r := &kgo.Record{Value: []byte("v"), Partition: int32(i % 2)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if !leaveOpen {
			if err := cl.EndTransaction(ctx, end); err != nil {
				t.Fatal(err)
			}
		}
	}
	steps := []struct {
		name string
		n    int
		end  kgo.TransactionEndTry
		open bool // leave the transaction open
		want TxnStats
	}{
		{"committed", 4, kgo.TryCommit, false, TxnStats{Committed: 2}},
		{"aborted", 6, kgo.TryAbort, false, TxnStats{Committed: 2, Aborted: 2, AbortedRecords: 6}},
		{"open", 3, kgo.TryCommit, true, TxnStats{Committed: 2, Aborted: 2, AbortedRecords: 6, Open: 2}},
	}
	for _, s := range steps {
		txn(s.n, s.end, s.open)
		if got := Transactions(t, addrs, "out"); got != s.want {
			t.Fatalf("after the %s transaction: %+v, want %+v", s.name, got, s.want)
		}
	}
}
