package failpoint

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// KafkaHooks returns the client hooks that serve EndTxnSent, for
// kgo.WithHooks on the transactional client; nil unless EndTxnSent is
// armed, so an unarmed process pays nothing per request.
func KafkaHooks() []kgo.Hook {
	if !enabled || armed.Name != EndTxnSent {
		return nil
	}
	return []kgo.Hook{endTxnHook{}}
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
