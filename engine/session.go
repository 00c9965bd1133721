package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Delivery guarantees (Config.Delivery).
const (
	// DeliveryExactlyOnce commits outputs, changelog records and input
	// offsets in one Kafka transaction per commit cycle (design §2).
	DeliveryExactlyOnce = "exactly-once"
	// DeliveryAtLeastOnce produces without transactions and commits the
	// input offsets after every output and changelog record of the cycle is
	// acknowledged. It is NOT exactly-once: after a failure the records
	// since the last offset commit are processed again, so outputs repeat
	// and state may count an event twice. It exists to measure what
	// exactly-once costs (`processor bench`).
	DeliveryAtLeastOnce = "at-least-once"
)

// session is the Kafka side of the commit cycle: polls, produces and the
// end of a cycle. *kgo.GroupTransactSession is the exactly-once session;
// alosSession is the at-least-once one. runSession owns it; it is used from
// the loop and the workers as a GroupTransactSession is.
type session interface {
	PollRecords(ctx context.Context, maxPollRecords int) kgo.Fetches
	Begin() error
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	// End ends the cycle; committed says whether its state may be applied.
	End(ctx context.Context, commit kgo.TransactionEndTry) (committed bool, err error)
	AllowRebalance()
	Client() *kgo.Client
	Close()
}

// newSession returns the session for cfg.Delivery.
func (e *Engine) newSession() (session, error) {
	if e.cfg.Delivery == DeliveryAtLeastOnce {
		cl, err := kgo.NewClient(e.sessionOpts()...)
		if err != nil {
			return nil, err
		}
		return alosSession{cl: cl}, nil
	}
	opts := append(e.sessionOpts(), kgo.TransactionalID(e.cfg.TransactionalID()), kgo.TransactionTimeout(e.cfg.TransactionTimeout))
	return kgo.NewGroupTransactSession(opts...)
}

// errNoAbort is End's error for an at-least-once cycle that must not
// commit: what it produced cannot be taken back, so the session is rebuilt
// and consumption resumes from the last committed offsets.
var errNoAbort = errors.New("at-least-once delivery cannot abort a cycle; resuming from the committed offsets")

// alosSession is the at-least-once session: a plain group consumer and
// idempotent producer. Begin does nothing; End commits the polled offsets.
// Rebalances are blocked on poll as in the exactly-once session, so the
// offsets committed are exactly those of the records processed.
type alosSession struct{ cl *kgo.Client }

func (s alosSession) PollRecords(ctx context.Context, n int) kgo.Fetches {
	return s.cl.PollRecords(ctx, n)
}
func (alosSession) Begin() error          { return nil }
func (s alosSession) AllowRebalance()     { s.cl.AllowRebalance() }
func (s alosSession) Client() *kgo.Client { return s.cl }
func (s alosSession) Close()              { s.cl.Close() }
func (s alosSession) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	s.cl.Produce(ctx, r, promise)
}

// End implements session: the loop has already waited for every produce to
// be acknowledged (loop.outcome), so committing the offsets now never skips
// an input whose outputs are missing. An abort is refused (errNoAbort),
// which makes the engine rebuild the session.
func (s alosSession) End(ctx context.Context, try kgo.TransactionEndTry) (bool, error) {
	if try != kgo.TryCommit {
		return false, errNoAbort
	}
	if err := s.cl.Flush(ctx); err != nil {
		return false, fmt.Errorf("flushing at-least-once outputs: %w", err)
	}
	if err := s.cl.CommitUncommittedOffsets(ctx); err != nil {
		return false, fmt.Errorf("committing offsets: %w", err)
	}
	return true, nil
}
