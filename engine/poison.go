package engine

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/cairn-cjo/cairn/state"
)

// Reasons of dead letters that come from operators rather than the decoder.
const (
	// ReasonOperator: an operator failed on the record twice in a row.
	ReasonOperator = "operator_error"
	// ReasonTimer: an operator failed on a timer firing twice in a row;
	// the DLQ record carries the timer, keyed by its user.
	ReasonTimer = "timer_error"
)

// poisonAttempts is how many times an input record or a timer firing is
// tried before it is dead-lettered: once more after the first failure, in
// case the cause was passing.
const poisonAttempts = 2

// poisonLimit bounds the book; past it, it starts over (a failure is then
// tried again before it is dead-lettered, which costs an abort, nothing
// else).
const poisonLimit = 10_000

// operatorFailure is an operator's error on one input record or one timer
// firing, named by its poison key.
type operatorFailure struct {
	key string
	err error
}

func (f *operatorFailure) Error() string { return f.err.Error() }
func (f *operatorFailure) Unwrap() error { return f.err }

// recordKey names input record offset of partition p in the poison book.
func recordKey(p int32, offset int64) string {
	return "r" + strconv.Itoa(int(p)) + "@" + strconv.FormatInt(offset, 10)
}

// timerKey names a timer firing (its encoded key, which holds the
// partition, due time, operator, user and id) in the poison book.
func timerKey(k state.Key) string { return "t" + string(k.Encode()) }

// poisonBook remembers the records and timer firings whose processing
// failed, and how often, across the aborts that follow: an operator error
// aborts the transaction and the session rewinds the input, so the failed
// record comes again. The first failure is retried; the second is sent to
// the dead-letter topic instead of being processed, so a record or timer an
// operator cannot handle never stalls its partition (design §2). The book
// lives in memory: after a restart a poison record fails again and is
// dead-lettered again, in the transaction that commits it, so the DLQ
// still gets it exactly once. It is safe for concurrent use.
type poisonBook struct {
	some  atomic.Bool // fails is not empty: the fast path of every lookup
	mu    sync.Mutex
	fails map[string]poisonEntry
}

type poisonEntry struct {
	n   int
	err string
}

// fail records a failure of key and returns how many there were.
func (b *poisonBook) fail(key string, err error) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fails == nil || len(b.fails) >= poisonLimit {
		b.fails = map[string]poisonEntry{}
	}
	e := b.fails[key]
	e.n++
	e.err = err.Error()
	b.fails[key] = e
	b.some.Store(true)
	return e.n
}

// deadRecord reports whether input record offset of partition p failed
// poisonAttempts times, with the last error's text. Cost: an atomic load
// while the book is empty, which it nearly always is.
func (b *poisonBook) deadRecord(p int32, offset int64) (bool, string) {
	if b == nil || !b.some.Load() {
		return false, ""
	}
	return b.dead(recordKey(p, offset))
}

// deadTimer is deadRecord for a timer firing.
func (b *poisonBook) deadTimer(k state.Key) (bool, string) {
	if b == nil || !b.some.Load() {
		return false, ""
	}
	return b.dead(timerKey(k))
}

func (b *poisonBook) dead(key string) (bool, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.fails[key]
	return e.n >= poisonAttempts, e.err
}

// isOperatorFailure reports whether err is an operator failure and nothing
// worse.
func isOperatorFailure(err error) bool {
	var f *operatorFailure
	return errors.As(err, &f) && !errors.Is(err, ErrFatal)
}

// asOperatorFailure returns err as an operatorFailure of key(), unless it
// is fatal (the store failed) or already one (a timer fired before the
// record's own operators ran). Only operator failures are dead-lettered.
func asOperatorFailure(err error, key func() string) error {
	var f *operatorFailure
	if err == nil || errors.Is(err, ErrFatal) || errors.As(err, &f) {
		return err
	}
	return &operatorFailure{key: key(), err: err}
}
