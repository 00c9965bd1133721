package journey

import (
	"bytes"
	"fmt"
	"sort"
)

// UserView is a user's journey state as shown by GET /v1/users/{id}. It is
// a snapshot for JSON encoding, with no synchronization.
type UserView struct {
	Journeys []InstanceView `json:"journeys"`
	// History counts the events kept per name for did conditions.
	History map[string]int `json:"history,omitempty"`
	// RecentSends lists the send times (ms) kept per channel for caps.
	RecentSends map[string][]int64 `json:"recent_sends,omitempty"`
}

// InstanceView is the user's state in one journey: the latest entry, active
// or not.
type InstanceView struct {
	Journey      string         `json:"journey"`
	Version      int            `json:"version"`
	EntrySeq     uint32         `json:"entry_seq"`
	EntryEvent   string         `json:"entry_event"`
	EntryTS      int64          `json:"entry_ts"`
	EntryProps   map[string]any `json:"entry_props,omitempty"`
	Active       bool           `json:"active"`
	Holdout      bool           `json:"holdout,omitempty"`
	Node         string         `json:"node,omitempty"`
	NodeSince    int64          `json:"node_since,omitempty"`
	NextTimer    int64          `json:"next_timer,omitempty"` // due time, ms
	LastExit     int64          `json:"last_exit,omitempty"`
	GoalOpen     bool           `json:"goal_open,omitempty"`
	GoalDeadline int64          `json:"goal_deadline,omitempty"`
}

// DescribeUser renders a user's journey state from a scan of the user's
// state under OperatorName (sub keys and values, as engine.Context.Scan or
// engine.Local.ScanUser give them). Journeys are sorted by id. It needs no
// Operator, so any instance can render state forwarded to it.
func DescribeUser(scan func(fn func(sub, value []byte) error) error) (*UserView, error) {
	v := &UserView{Journeys: []InstanceView{}}
	err := scan(func(sub, value []byte) error {
		switch {
		case bytes.HasPrefix(sub, []byte(recPrefix)):
			return v.addRecord(string(sub[len(recPrefix):]), value)
		case bytes.HasPrefix(sub, []byte(histPrefix)):
			var h []histEvent
			if err := decode(value, &h); err != nil {
				return fmt.Errorf("reading history %s: %w", sub, err)
			}
			if v.History == nil {
				v.History = map[string]int{}
			}
			v.History[string(sub[len(histPrefix):])] = len(h)
		case string(sub) == capsKey:
			var cs capState
			if err := decode(value, &cs); err != nil {
				return fmt.Errorf("reading frequency caps: %w", err)
			}
			v.RecentSends = cs.Sent
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("describing user: %w", err)
	}
	sort.Slice(v.Journeys, func(i, j int) bool { return v.Journeys[i].Journey < v.Journeys[j].Journey })
	return v, nil
}

func (v *UserView) addRecord(id string, value []byte) error {
	var rec userRec
	if err := decode(value, &rec); err != nil {
		return fmt.Errorf("reading record of %s: %w", id, err)
	}
	props, err := rec.Entry.props()
	if err != nil {
		return fmt.Errorf("reading record of %s: %w", id, err)
	}
	v.Journeys = append(v.Journeys, InstanceView{
		Journey: id, Version: rec.Version, EntrySeq: rec.Seq,
		EntryEvent: rec.Entry.Name, EntryTS: rec.Entry.TS, EntryProps: props,
		Active: rec.Active, Holdout: rec.Holdout, Node: rec.Node, NodeSince: rec.NodeTS,
		NextTimer: rec.Due, LastExit: rec.LastExit,
		GoalOpen: rec.GoalOpen, GoalDeadline: rec.GoalDeadline,
	})
	return nil
}
