// Package workload generates Cairn's benchmark load: users with Zipf
// activity walking app_open → view_item → add_to_cart → purchase sessions,
// with profile updates, malformed records (for the DLQ) and late events.
// The same Options (seed included) give the same records in the same order,
// whatever the clock: timestamps are passed in by the caller.
package workload

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/cairn-cjo/cairn/internal/demo"
)

// Options configures a Generator. Zero fields take the default in brackets;
// a negative rate means 0.
type Options struct {
	Seed  uint64 // [1]
	Users int    // distinct users [10000]
	// ZipfS and ZipfV shape user activity: the user of rank k (from 0) is
	// chosen with probability ∝ (v+k)^-s, s > 1, v ≥ 1. With the defaults
	// [1.1, 50] and 10,000 users the most active user makes 0.5% of the
	// events and the top 1% of users make 25%; v = 1 is the pure Zipf law,
	// where the top user makes 15%, more like a bot than a customer.
	ZipfS float64
	ZipfV float64
	// Steps are the probabilities of each session step given the one
	// before: view_item after app_open, add_to_cart after view_item,
	// purchase after add_to_cart. [0.8, 0.5, 0.3]
	Steps [3]float64
	// Concurrent sessions are open at once; each record continues one of
	// them chosen at random, so users interleave as on a live site. [64]
	Concurrent    int
	ProfileRate   float64       // fraction of records that are $profile_set [0.01]
	MalformedRate float64       // fraction of records that must go to the DLQ [0.001]
	LateRate      float64       // fraction of events whose ts lags up to MaxLate [0.01]
	MaxLate       time.Duration // [1h]
	// IDPrefix starts every event id, which is "<prefix>-<n>" with n the
	// record's sequence number from 0. ["w"]
	IDPrefix string
}

// EnsureDefaults fills in zero fields.
func (o *Options) EnsureDefaults() {
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Users == 0 {
		o.Users = 10_000
	}
	if o.ZipfS == 0 {
		o.ZipfS = 1.1
	}
	if o.ZipfV == 0 {
		o.ZipfV = 50
	}
	if o.Steps == [3]float64{} {
		o.Steps = [3]float64{0.8, 0.5, 0.3}
	}
	if o.Concurrent == 0 {
		o.Concurrent = 64
	}
	defRate(&o.ProfileRate, 0.01)
	defRate(&o.MalformedRate, 0.001)
	defRate(&o.LateRate, 0.01)
	if o.MaxLate == 0 {
		o.MaxLate = time.Hour
	}
	if o.IDPrefix == "" {
		o.IDPrefix = "w"
	}
}

func defRate(r *float64, def float64) {
	switch {
	case *r == 0:
		*r = def
	case *r < 0:
		*r = 0
	}
}

// Validate reports every invalid field.
func (o *Options) Validate() error {
	var errs []error
	if o.Users < 1 {
		errs = append(errs, fmt.Errorf("users %d: must be positive", o.Users))
	}
	if o.ZipfS <= 1 || o.ZipfV < 1 {
		errs = append(errs, fmt.Errorf("zipf s %v, v %v: s must be above 1 and v at least 1", o.ZipfS, o.ZipfV))
	}
	for i, p := range append(o.Steps[:], o.ProfileRate, o.MalformedRate, o.LateRate) {
		if p < 0 || p > 1 {
			errs = append(errs, fmt.Errorf("probability %d (%v): must be in [0, 1]", i, p))
		}
	}
	if o.ProfileRate+o.MalformedRate > 1 {
		errs = append(errs, errors.New("profile and malformed rates add up to more than 1"))
	}
	return errors.Join(errs...)
}

// Kind says what a record is, so that a harness can count what to expect.
type Kind uint8

// Kinds of records.
const (
	SessionEvent Kind = iota // a step of a session
	ProfileSet               // a $profile_set
	Malformed                // a record the engine must send to the DLQ
)

// Record is one generated Kafka record.
type Record struct {
	Key, Value []byte
	Kind       Kind
	Seq        uint64 // sequence number, from 0; the event id ends with it
	User       int    // user rank (0 is the most active)
	Event      string // event name; "" for a malformed record
	TS         int64  // the event's ts (ms); below the send time when Late
	Late       bool
}

// wire is the record value (docs/events.md), as the demo stream writes it.
type wire = demo.Event

var (
	tiers    = []string{"silver", "silver", "silver", "gold", "bronze"}
	zones    = []string{"UTC", "Europe/Paris", "America/New_York", "Asia/Shanghai"}
	skus     = []string{"sku-boots", "sku-tent", "sku-lamp", "sku-stove"}
	channels = []string{"app", "web"}
	steps    = []string{"app_open", "view_item", "add_to_cart", "purchase"}
)

// session is one user's walk down the funnel.
type session struct {
	user    int
	next    int // index in steps of the next event
	channel string
	sku     string
	price   int
}

// Generator produces records. It is deterministic for its Options and not
// safe for concurrent use. Next costs one JSON encoding (about 1–2 µs).
type Generator struct {
	o        Options
	rng      *rand.Rand
	zipf     *rand.Zipf
	sessions []session
	seq      uint64
}

// New returns a generator, or an error naming the invalid options.
func New(o Options) (*Generator, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("validating workload options: %w", err)
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	g := &Generator{o: o, rng: rng, zipf: rand.NewZipf(rng, o.ZipfS, o.ZipfV, uint64(o.Users-1))}
	g.sessions = make([]session, o.Concurrent)
	for i := range g.sessions {
		g.sessions[i] = g.newSession()
	}
	return g, nil
}

// Options returns the generator's options with defaults filled in.
func (g *Generator) Options() Options { return g.o }

// UserID is the id of the user of rank u.
func UserID(u int) string { return "u-" + strconv.Itoa(u) }

func (g *Generator) newSession() session {
	price := 5 + g.rng.IntN(60)
	return session{user: int(g.zipf.Uint64()), channel: channels[g.rng.IntN(2)], sku: skus[g.rng.IntN(len(skus))], price: price}
}

// Next returns the next record, stamped now (ms) unless it is late.
func (g *Generator) Next(now int64) Record {
	r := Record{Seq: g.seq, TS: now}
	g.seq++
	if g.rng.Float64() < g.o.LateRate {
		r.Late = true
		r.TS = now - 1 - g.rng.Int64N(g.o.MaxLate.Milliseconds())
	}
	w := wire{TS: r.TS, EventID: g.o.IDPrefix + "-" + strconv.FormatUint(r.Seq, 10)}
	switch x := g.rng.Float64(); {
	case x < g.o.MalformedRate:
		return g.malformed(r, w)
	case x < g.o.MalformedRate+g.o.ProfileRate:
		r.Kind, r.User, w.Event = ProfileSet, int(g.zipf.Uint64()), "$profile_set"
		w.Props = map[string]any{"tier": tiers[g.rng.IntN(len(tiers))], "tz": zones[g.rng.IntN(len(zones))]}
	default:
		g.step(&r, &w)
	}
	r.Event, w.UserID = w.Event, UserID(r.User)
	r.Key = []byte(w.UserID)
	r.Value, _ = json.Marshal(w) // cannot fail: strings, ints and a map[string]any of those
	return r
}

// step continues a random open session and replaces it once it ends.
func (g *Generator) step(r *Record, w *wire) {
	i := g.rng.IntN(len(g.sessions))
	s := &g.sessions[i]
	r.Kind, r.User, w.Event = SessionEvent, s.user, steps[s.next]
	switch s.next {
	case 0:
		w.Props = map[string]any{"channel": s.channel}
	case 3:
		w.Props = map[string]any{"sku": s.sku, "amount": s.price, "channel": s.channel}
	default:
		w.Props = map[string]any{"sku": s.sku, "price": s.price, "channel": s.channel}
	}
	if s.next == len(steps)-1 || g.rng.Float64() >= g.o.Steps[s.next] {
		*s = g.newSession()
		return
	}
	s.next++
}

// malformed returns one of three records the decoder rejects: not JSON,
// no user_id, or a key that differs from user_id.
func (g *Generator) malformed(r Record, w wire) Record {
	r.Kind, r.User = Malformed, int(g.zipf.Uint64())
	uid := UserID(r.User)
	r.Key = []byte(uid)
	switch g.rng.IntN(3) {
	case 0:
		r.Value = []byte("not json " + w.EventID)
	case 1:
		w.Event = "app_open"
		r.Value, _ = json.Marshal(w)
	default:
		w.UserID, w.Event = uid+"-other", "app_open"
		r.Value, _ = json.Marshal(w)
	}
	return r
}
