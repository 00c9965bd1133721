// Package demo produces a small, realistic stream of user events for
// `processor dev`: sessions that walk app_open → view_item → add_to_cart →
// purchase, with profile updates, from a fixed set of users.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Options configures Run.
type Options struct {
	Brokers []string
	Topic   string  // default "events"
	Users   int     // default 200
	Rate    float64 // events per second, default 20
	Seed    uint64  // default 1
	Logger  *slog.Logger
}

// Event is the wire form of docs/events.md.
type Event struct {
	UserID  string         `json:"user_id"`
	Event   string         `json:"event"`
	TS      int64          `json:"ts"`
	Props   map[string]any `json:"props,omitempty"`
	EventID string         `json:"event_id"`
}

var (
	tiers = []string{"silver", "silver", "silver", "gold"}
	zones = []string{"UTC", "Europe/Paris", "America/New_York", "Asia/Shanghai"}
	skus  = []string{"sku-boots", "sku-tent", "sku-lamp", "sku-stove"}
)

// Run produces events until ctx is canceled.
func Run(ctx context.Context, o Options) error {
	if o.Topic == "" {
		o.Topic = "events"
	}
	o.Users, o.Rate, o.Seed = max(o.Users, 1), max(o.Rate, 1), max(o.Seed, 1)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.Brokers...), kgo.DefaultProduceTopic(o.Topic))
	if err != nil {
		return fmt.Errorf("creating demo producer: %w", err)
	}
	defer cl.Close()
	g := NewGenerator(o.Seed, o.Users)
	g.IDPrefix = fmt.Sprintf("demo-%d", time.Now().UnixMilli())
	tick := time.NewTicker(time.Duration(float64(time.Second) / o.Rate))
	defer tick.Stop()
	var queue []Event
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if len(queue) == 0 {
			queue = g.Session()
		}
		ev := queue[0]
		queue = queue[1:]
		ev.TS = time.Now().UnixMilli()
		b, _ := json.Marshal(ev)
		cl.Produce(ctx, &kgo.Record{Key: []byte(ev.UserID), Value: b}, func(_ *kgo.Record, err error) {
			if err != nil && ctx.Err() == nil {
				o.Logger.Warn("demo produce failed", "error", err)
			}
		})
	}
}

// Generator makes deterministic user sessions: the same seed gives the same
// sessions. It is not safe for concurrent use.
type Generator struct {
	// IDPrefix starts every event id; default "demo".
	IDPrefix string

	rng   *rand.Rand
	users int
	seen  map[int]bool
	n     int
}

// NewGenerator returns a generator over users users.
func NewGenerator(seed uint64, users int) *Generator {
	return &Generator{IDPrefix: "demo", rng: rand.New(rand.NewPCG(seed, 7)), users: max(users, 1), seen: map[int]bool{}}
}

// Session returns the events of one user session, without timestamps: a
// profile on the user's first session, then a walk down the purchase
// funnel (app_open; view_item 80%; add_to_cart 50% of those; purchase 30%
// of those). Activity is skewed towards low user ids.
func (g *Generator) Session() []Event {
	u := int(float64(g.users) * g.rng.Float64() * g.rng.Float64()) // skewed to low ids
	uid := fmt.Sprintf("u-%d", u)
	var out []Event
	add := func(name string, props map[string]any) {
		g.n++
		out = append(out, Event{UserID: uid, Event: name, Props: props, EventID: fmt.Sprintf("%s-%d", g.IDPrefix, g.n)})
	}
	if !g.seen[u] {
		g.seen[u] = true
		add("$profile_set", map[string]any{"tier": tiers[g.rng.IntN(len(tiers))], "tz": zones[g.rng.IntN(len(zones))]})
	}
	channel := []string{"app", "web"}[g.rng.IntN(2)]
	sku := skus[g.rng.IntN(len(skus))]
	price := 5 + g.rng.IntN(60)
	add("app_open", map[string]any{"channel": channel})
	if g.rng.Float64() < 0.8 {
		add("view_item", map[string]any{"sku": sku, "price": price, "channel": channel})
		if g.rng.Float64() < 0.5 {
			add("add_to_cart", map[string]any{"sku": sku, "price": price, "channel": channel})
			if g.rng.Float64() < 0.3 {
				add("purchase", map[string]any{"sku": sku, "amount": price, "channel": channel})
			}
		}
	}
	return out
}
