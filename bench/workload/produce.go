package workload

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Counts tallies what a producer sent. The zero value is ready to use; Add
// is not safe for concurrent use, and a copy shares the set of users seen.
type Counts struct {
	Records   int64 `json:"records"`
	Bytes     int64 `json:"bytes"` // keys and values
	Profile   int64 `json:"profile"`
	Malformed int64 `json:"malformed"`
	Late      int64 `json:"late"`
	Users     int   `json:"users"` // distinct users

	seen map[int]struct{}
}

// Add counts r.
func (c *Counts) Add(r Record) {
	c.Records++
	if c.seen == nil {
		c.seen = map[int]struct{}{}
	}
	if _, ok := c.seen[r.User]; !ok {
		c.seen[r.User] = struct{}{}
		c.Users++
	}
	c.Bytes += int64(len(r.Key) + len(r.Value))
	switch r.Kind {
	case ProfileSet:
		c.Profile++
	case Malformed:
		c.Malformed++
	}
	if r.Late {
		c.Late++
	}
}

// firstErr keeps the first produce error reported by a promise.
type firstErr struct {
	mu  sync.Mutex
	err error
}

func (f *firstErr) promise(_ *kgo.Record, err error) {
	if err != nil {
		f.mu.Lock()
		if f.err == nil {
			f.err = err
		}
		f.mu.Unlock()
	}
}

// wait flushes cl and returns the first produce error, or ctx's error.
func (f *firstErr) wait(ctx context.Context, cl *kgo.Client, what string) error {
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("%s: flushing: %w", what, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return fmt.Errorf("%s: %w", what, f.err)
	}
	return ctx.Err()
}

// Prefill produces n records to topic with timestamps spread evenly over
// the span before end, and waits until every one is acknowledged.
func Prefill(ctx context.Context, cl *kgo.Client, topic string, g *Generator, n int, end time.Time, span time.Duration) (Counts, error) {
	var c Counts
	var fe firstErr
	start := end.Add(-span).UnixMilli()
	step := float64(span.Milliseconds()) / float64(max(n, 1))
	for i := 0; i < n && ctx.Err() == nil; i++ {
		r := g.Next(start + int64(float64(i)*step))
		c.Add(r)
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value}, fe.promise)
	}
	return c, fe.wait(ctx, cl, "prefilling "+topic)
}

// OpenLoop produces to topic at rate records/s for d, open loop: record i
// is due at start + i/rate whatever happened to the records before it, and
// a producer that falls behind sends at once rather than skipping, so a
// latency measured from the due time includes any queueing (no coordinated
// omission). Each record's ts is the wall clock when it is sent. sent, if
// not nil, is called with each record and its due time before it is
// produced. OpenLoop waits for every acknowledgement before returning.
func OpenLoop(ctx context.Context, cl *kgo.Client, topic string, g *Generator, rate float64, d time.Duration,
	sent func(r Record, due time.Time)) (Counts, error) {
	var c Counts
	var fe firstErr
	if rate <= 0 {
		return c, fmt.Errorf("open-loop rate %v: must be positive", rate)
	}
	interval := time.Duration(float64(time.Second) / rate)
	n := int64(d.Seconds() * rate)
	start := time.Now()
	for i := int64(0); i < n && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			select { // an overslept wait only makes the next records go at once
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		r := g.Next(time.Now().UnixMilli())
		c.Add(r)
		if sent != nil {
			sent(r, due)
		}
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value}, fe.promise)
	}
	return c, fe.wait(ctx, cl, "producing open-loop records to "+topic)
}
