package failpoint

import (
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// KafkaHooks returns the client hooks that serve EndTxnSent and
// FreezeInEnd, for kgo.WithHooks on the transactional client; nil unless
// one of them is armed, so an unarmed process pays nothing per request.
func KafkaHooks() []kgo.Hook {
	switch {
	case !enabled:
		return nil
	case armed.Name == EndTxnSent:
		return []kgo.Hook{endTxnHook{}}
	case armed.Name == FreezeInEnd:
		return []kgo.Hook{&freezeHook{}}
	}
	return nil
}

// endTxnHook injects EndTxnSent after each EndTxn request written in full.
// franz-go calls OnBrokerWrite on the writing goroutine before it even
// queues the read of the reply, so the process dies with the request on
// the wire and its outcome unknown to it.
type endTxnHook struct{}

var _ kgo.HookBrokerWrite = endTxnHook{}

func (endTxnHook) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == int16(kmsg.EndTxn) && err == nil {
		Inject(EndTxnSent)
	}
}

// freezeHook injects FreezeInEnd when it reads the reply to the first
// heartbeat after a TxnOffsetCommit reply: kgo's GroupTransactSession.End
// forces that heartbeat after committing the offsets and sends EndTxn once
// it is answered. franz-go calls OnBrokerRead before it hands the reply
// on, so the process stops with the answer in hand; thawed, it ends the
// transaction as it would have, whatever the group did meanwhile.
type freezeHook struct{ offsetsSent atomic.Bool }

var _ kgo.HookBrokerRead = (*freezeHook)(nil)

func (h *freezeHook) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	switch {
	case err != nil:
	case key == int16(kmsg.TxnOffsetCommit):
		h.offsetsSent.Store(true)
	case key == int16(kmsg.EndTxn):
		h.offsetsSent.Store(false)
	case key == int16(kmsg.Heartbeat) && h.offsetsSent.Swap(false):
		Inject(FreezeInEnd)
	}
}
