// Package journey runs customer journeys: per-user state machines declared
// in YAML (kind: journey), with send policies (kind: policy) applied to
// their actions. docs/journeys.md is the definition reference and
// docs/actions.md the contract of the action records it produces.
//
// The operator is deterministic: it reads only its Context (event time,
// per-user state, shared counters, profile) and never the wall clock, and
// every iteration whose order reaches an output or a state write is over
// sorted keys. Replaying a partition therefore produces the same actions,
// byte for byte.
//
// File map:
//
//	operator.go     Operator, New, indexes, the engine.Operator methods
//	def.go          compiled definitions (immutable, shared by partitions)
//	parse*.go       YAML decoding of journeys, entries, conditions and policies
//	validate.go     graph checks: unknown node, cycle, unreachable node
//	records.go      state layout: per-user records, timer payloads
//	run.go          one call: record cache, goal, exit_on, waits, entry
//	instance.go     entering, stepping through nodes, exiting, timers
//	action.go       the Action record, sending through the policies
//	cond.go         condition evaluation, in_segment included
//	schedule.go     cron schedules of broadcasts (robfig/cron) in event time
//	broadcast.go    scheduled broadcasts: arming, slices, cursor
//	history.go      the bounded did-history
//	policy.go       frequency caps and quiet hours
//	stats.go        per-partition counters, Stats and SumStats
//	describe.go     DescribeUser, the per-user view of the HTTP API
//	timeutil.go     durations with days, HH:MM in a zone, hashing
//
// State of one user (operator name "journey", sub keys):
//
//	j/<journey id>  record: entry count, last entry/exit, active instance,
//	                pending goal window
//	h/<event name>  did-history of that event name, bounded (cond.go)
//	c               frequency-cap history, bounded (policy.go)
//
// Partition-wide state: s/<journey id>/<version> holds that version's
// counters on this partition; b/<journey id> the progress of a scheduled
// journey's broadcasts (next tick, or the running pass and its cursor); a
// the fingerprint of the schedules armed on the partition.
//
// Timers: one per (user, journey), id "j/<journey id>", whose payload names
// the instance (version, entry seq, node) it was set for; a timer that no
// longer matches the instance is stale and ignored. One per partition
// (user "") and scheduled journey, id "b/<journey id>": the broadcast.
//
// Segments: the operator reads the segment operator's state (package
// segment) and never writes it: a user's record for {in_segment} and
// $segment_enter/$segment_exit entries, the partition's bitmaps for
// broadcasts. It must be registered after the segment operator.
package journey
