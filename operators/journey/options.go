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
}

// Validate reports an option that cannot work.
func (o *Options) Validate() error {
	if o.MaxHistory < 1 {
		return fmt.Errorf("journey options: max history %d: must be at least 1", o.MaxHistory)
	}
	return nil
}
