package kafkatest

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TxnStats describes the transactions found in topics by reading them with
// read_uncommitted and their control records kept.
type TxnStats struct {
	// Aborted counts abort markers: one per partition that an aborted
	// transaction wrote to. Above zero, some fault struck while a
	// transaction was open on the broker.
	Aborted int
	// Committed counts commit markers, one per partition and transaction.
	Committed int
	// AbortedRecords counts the data records of aborted transactions:
	// those a read_uncommitted consumer sees and a read_committed one
	// does not.
	AbortedRecords int
	// Open counts partitions whose last stable offset is below their high
	// watermark: a transaction still open (hanging) when they were listed.
	Open int
}

// Add returns the sum of s and o.
func (s TxnStats) Add(o TxnStats) TxnStats {
	return TxnStats{s.Aborted + o.Aborted, s.Committed + o.Committed, s.AbortedRecords + o.AbortedRecords, s.Open + o.Open}
}

// Transactions reads every topic to its high watermark with
// read_uncommitted and returns the sums of their TxnStats. Cost: one read
// of each topic. It fails the test if a topic cannot be read.
func Transactions(t testing.TB, addrs []string, topics ...string) TxnStats {
	t.Helper()
	var sum TxnStats
	for _, topic := range topics {
		open, err := OpenTransactions(addrs, topic)
		if err != nil {
			t.Fatal(err)
		}
		s, err := readMarkers(addrs, topic, 60*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		s.Open = open
		sum = sum.Add(s)
	}
	return sum
}

// OpenTransactions returns how many partitions of topic have their last
// stable offset below their high watermark, i.e. a transaction open.
func OpenTransactions(addrs []string, topic string) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lso, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("listing stable offsets of %s: %w", topic, err)
	}
	hwm, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	open := 0
	hwm.Each(func(o kadm.ListedOffset) {
		if l, ok := lso.Lookup(topic, o.Partition); !ok || l.Err != nil || o.Err != nil || l.Offset != o.Offset {
			open++
		}
	})
	return open, nil
}

// WaitNoOpenTransactions waits up to 60s until no partition of topic has
// an open transaction, for example one of an instance killed
// mid-transaction that never came back (the broker aborts it after the
// transaction timeout).
func WaitNoOpenTransactions(t testing.TB, addrs []string, topic string) {
	t.Helper()
	var last error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		n, err := OpenTransactions(addrs, topic)
		if err == nil && n == 0 {
			return
		}
		last = err
	}
	t.Fatalf("%s still has an open transaction after 60s (%v)", topic, last)
}

// Control record types (the second int16 of a control record's key).
const (
	controlAbort  = 0
	controlCommit = 1
)

// readMarkers reads topic from its start to its high watermark with
// read_uncommitted and counts markers and aborted data records. A data
// record belongs to the open transaction of its producer in its partition,
// which the producer's next marker there ends.
func readMarkers(addrs []string, topic string, timeout time.Duration) (TxnStats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return TxnStats{}, err
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	cl.Close()
	if err != nil {
		return TxnStats{}, fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	want := map[int32]int64{}
	parts := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition], parts[o.Partition] = o.Offset, kgo.NewOffset().AtStart()
		}
	})
	if len(want) == 0 {
		return TxnStats{}, nil
	}
	rc, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.KeepControlRecords(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	if err != nil {
		return TxnStats{}, err
	}
	defer rc.Close()
	var s TxnStats
	type pp struct {
		p   int32
		pid int64
	}
	pending := map[pp]int{} // data records of the producer's open transaction in the partition
	for len(want) > 0 {
		fs := rc.PollFetches(ctx)
		if ctx.Err() != nil {
			return TxnStats{}, fmt.Errorf("reading %s: %d partitions not read to the end: %w", topic, len(want), ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			k := pp{r.Partition, r.ProducerID}
			switch {
			case !r.Attrs.IsControl():
				if r.Attrs.IsTransactional() {
					pending[k]++
				}
			case controlType(r.Key) == controlAbort:
				s.Aborted++
				s.AbortedRecords += pending[k]
				delete(pending, k)
			case controlType(r.Key) == controlCommit:
				s.Committed++
				delete(pending, k)
			}
			if r.Offset >= end-1 {
				delete(want, r.Partition)
			}
		})
	}
	return s, nil
}

// controlType decodes a control record key (int16 version, int16 type);
// -1 if it is too short.
func controlType(key []byte) int {
	if len(key) < 4 {
		return -1
	}
	return int(int16(binary.BigEndian.Uint16(key[2:4])))
}

// CheckTransactions is Transactions, failing the test (without stopping
// it) if a transaction is left open: after the last instance stopped
// cleanly and every killed one was fenced, the last stable offset of every
// partition must equal its high watermark.
func CheckTransactions(t testing.TB, addrs []string, topics ...string) TxnStats {
	t.Helper()
	s := Transactions(t, addrs, topics...)
	if s.Open != 0 {
		t.Errorf("%d partitions of %v have a hanging transaction: last stable offset below the high watermark", s.Open, topics)
	}
	return s
}
