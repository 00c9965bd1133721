package engine

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// GlobalTable is a read-only copy of a compacted topic, such as the
// aggregates topic, kept current by tailing it from the start with
// read_committed (design §5). Reads are safe for concurrent use and see
// only committed upserts.
type GlobalTable struct {
	topic string
	opts  []kgo.Opt
	log   *slog.Logger

	mu   sync.RWMutex // guards rows
	rows map[string][]byte
}

// NewGlobalTable returns a table of topic; call Run to fill it.
func NewGlobalTable(brokers []string, topic string, log *slog.Logger, opts ...kgo.Opt) *GlobalTable {
	o := append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)
	return &GlobalTable{topic: topic, opts: o, log: log, rows: map[string][]byte{}}
}

// Run tails the topic until ctx is canceled, reconnecting on errors.
func (g *GlobalTable) Run(ctx context.Context) {
	for ctx.Err() == nil {
		cl, err := kgo.NewClient(g.opts...)
		if err != nil {
			g.log.Error("creating global table client", "topic", g.topic, "error", err)
			time.Sleep(time.Second)
			continue
		}
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(g.apply)
		}
		cl.Close()
	}
}

func (g *GlobalTable) apply(r *kgo.Record) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r.Value == nil {
		delete(g.rows, string(r.Key))
		return
	}
	g.rows[string(r.Key)] = r.Value
}

// Scan calls fn for every row whose key starts with prefix, in no order.
func (g *GlobalTable) Scan(prefix string, fn func(key string, value []byte)) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for k, v := range g.rows {
		if strings.HasPrefix(k, prefix) {
			fn(k, v)
		}
	}
}
