package journey

import "fmt"

// Options configures an Operator. The zero value is valid: EnsureDefaults
// fills every unset field. New copies it, so changing an Options after New
// has no effect.
type Options struct {
	// AggregatesTopic receives the per-partition counters as upserts keyed
	// "journey/<id>/<version>/<partition>". Default "cairn-aggregates".
	AggregatesTopic string
	// SuppressedTopic receives the actions that a policy suppressed, with a
	// reason. Default "actions.suppressed".
	SuppressedTopic string
	// ActionTopicPrefix is prepended to a channel name to form its topic.
	// Default "actions.".
	ActionTopicPrefix string
	// MaxHistory bounds the did-history kept per user and event name: only
	// the most recent MaxHistory events are kept, so counts saturate there.
	// Default 128.
	MaxHistory int
	// Segments, if not nil, is the complete list of segment ids that
	// journeys may name (segment.Operator.IDs()): New rejects a reference
	// to any other id, naming its file and line. A nil list means "do not
	// check" (only the id's syntax is); pass an empty, non-nil list when
	// no segment is defined.
	Segments []string
	// BroadcastSlice bounds the members one firing of a scheduled
	// broadcast enters (docs/journeys.md, "Scheduled broadcasts"). It
	// bounds the work and the writes of one timer firing. Default 1000.
	BroadcastSlice int

	// preloadMin: from how many expected reads an event's call reads the
	// user's whole journey state with one Scan (run.preload). Default
	// defaultPreloadMin; tests set it to -1 (always) or math.MaxInt (never)
	// to check that both ways give the same results.
	preloadMin int
}

// EnsureDefaults sets every zero field to its default.
func (o *Options) EnsureDefaults() {
	if o.AggregatesTopic == "" {
		o.AggregatesTopic = "cairn-aggregates"
	}
	if o.SuppressedTopic == "" {
		o.SuppressedTopic = "actions.suppressed"
	}
	if o.ActionTopicPrefix == "" {
		o.ActionTopicPrefix = "actions."
	}
	if o.MaxHistory == 0 {
		o.MaxHistory = 128
	}
	if o.BroadcastSlice == 0 {
		o.BroadcastSlice = 1000
	}
	if o.preloadMin == 0 {
		o.preloadMin = defaultPreloadMin
	}
}

// Validate reports an option that cannot work.
func (o *Options) Validate() error {
	if o.MaxHistory < 1 {
		return fmt.Errorf("journey options: max history %d: must be at least 1", o.MaxHistory)
	}
	if o.BroadcastSlice < 1 {
		return fmt.Errorf("journey options: broadcast slice %d: must be at least 1", o.BroadcastSlice)
	}
	return nil
}
