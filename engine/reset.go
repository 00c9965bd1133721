package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ErrGroupActive is returned by Reset while the app's consumer group has
// members: deleting the topics under running instances would lose their
// state mid-transaction.
var ErrGroupActive = errors.New("the app's consumer group has members")

// ResetPlan is what Reset deletes for one app: its internal topics that
// exist (<app>-changelog, <app>-aggregates, <app>-status) and its consumer group, with the
// group's committed input offsets. The input, its dead-letter topic and the
// action topics are shared with producers and consumers outside the app and
// are never deleted.
type ResetPlan struct {
	Group       string
	GroupExists bool
	Topics      []string // sorted
}

// PlanReset looks up what Reset would delete for cfg's app.
func PlanReset(ctx context.Context, adm *kadm.Client, cfg Config) (ResetPlan, error) {
	cfg.EnsureDefaults()
	p := ResetPlan{Group: cfg.AppID}
	details, err := adm.ListTopics(ctx, cfg.ChangelogTopic(), cfg.AggregatesTopic(), cfg.StatusTopic())
	if err != nil {
		return p, fmt.Errorf("listing the app's topics: %w", err)
	}
	for _, d := range details {
		if d.Err == nil {
			p.Topics = append(p.Topics, d.Topic)
		}
	}
	sort.Strings(p.Topics)
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		return p, fmt.Errorf("listing groups: %w", err)
	}
	_, p.GroupExists = groups[cfg.AppID]
	return p, nil
}

// Reset deletes what p names: the topics, then the group. It refuses with
// ErrGroupActive, deleting nothing, while the group has members; stop every
// instance first. Local state directories are not touched: an instance
// started on one after a reset finds a marker beyond the new, empty
// changelog and restores from scratch (design §2.4).
func Reset(ctx context.Context, adm *kadm.Client, p ResetPlan) error {
	if p.GroupExists {
		gs, err := adm.DescribeGroups(ctx, p.Group)
		if err != nil {
			return fmt.Errorf("describing group %s: %w", p.Group, err)
		}
		if g, ok := gs[p.Group]; ok && len(g.Members) > 0 {
			var ids []string
			for _, m := range g.Members {
				ids = append(ids, m.ClientID+"@"+m.ClientHost)
			}
			sort.Strings(ids)
			return fmt.Errorf("%w: %d running (%v); stop every instance of the app first", ErrGroupActive, len(ids), ids)
		}
	}
	if len(p.Topics) > 0 {
		resps, err := adm.DeleteTopics(ctx, p.Topics...)
		if err != nil {
			return fmt.Errorf("deleting topics %v: %w", p.Topics, err)
		}
		for _, r := range resps.Sorted() {
			if r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
				return fmt.Errorf("deleting topic %s: %w", r.Topic, r.Err)
			}
		}
	}
	if p.GroupExists {
		resps, err := adm.DeleteGroups(ctx, p.Group)
		if err != nil {
			return fmt.Errorf("deleting group %s: %w", p.Group, err)
		}
		if r := resps[p.Group]; r.Err != nil && !errors.Is(r.Err, kerr.GroupIDNotFound) {
			return fmt.Errorf("deleting group %s: %w", p.Group, r.Err)
		}
	}
	return nil
}
