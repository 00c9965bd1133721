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
//
// Rows are grouped by the first two segments of their key ("segment/gold/"
// of "segment/gold/3"), the kind and id of an aggregate, so that reading
// one aggregate costs its own rows, not the whole table's.
type GlobalTable struct {
	topic string
	opts  []kgo.Opt
	log   *slog.Logger

	mu     sync.RWMutex                 // guards groups
	groups map[string]map[string][]byte // keyGroup(key) -> key -> value
}

// keyGroup returns key up to and including its second '/', or "" if it has
// fewer than two.
func keyGroup(key string) string {
	i := strings.IndexByte(key, '/')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(key[i+1:], '/')
	if j < 0 {
		return ""
	}
	return key[:i+1+j+1]
}

// NewGlobalTable returns a table of topic; call Run to fill it.
func NewGlobalTable(brokers []string, topic string, log *slog.Logger, opts ...kgo.Opt) *GlobalTable {
	o := append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)
	return &GlobalTable{topic: topic, opts: o, log: log, groups: map[string]map[string][]byte{}}
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
	g.put(string(r.Key), r.Value)
}

// put sets (nil: deletes) one row; g.mu must be held.
func (g *GlobalTable) put(key string, value []byte) {
	grp := keyGroup(key)
	rows := g.groups[grp]
	if value == nil {
		delete(rows, key)
		if len(rows) == 0 {
			delete(g.groups, grp)
		}
		return
	}
	if rows == nil {
		rows = map[string][]byte{}
		g.groups[grp] = rows
	}
	rows[key] = value
}

// Scan calls fn for every row whose key starts with prefix, in no order.
// Cost: the rows of one group when prefix names a kind and an id
// ("funnel/checkout/"), else every row.
func (g *GlobalTable) Scan(prefix string, fn func(key string, value []byte)) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if grp := keyGroup(prefix); grp != "" {
		for k, v := range g.groups[grp] {
			if strings.HasPrefix(k, prefix) {
				fn(k, v)
			}
		}
		return
	}
	for _, rows := range g.groups {
		for k, v := range rows {
			if strings.HasPrefix(k, prefix) {
				fn(k, v)
			}
		}
	}
}
