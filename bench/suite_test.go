package bench

import (
	"testing"
	"time"
)

func TestPrefillEnd(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		now, clock, want string
		err              bool
	}{
		{now: "2026-12-07T13:05:00Z", clock: "12:00", want: "2026-12-07T12:00:00Z"},
		{now: "2026-12-07T11:59:00Z", clock: "12:00", want: "2026-12-06T12:00:00Z"},
		{now: "2026-12-07T12:00:00Z", clock: "12:00", want: "2026-12-07T12:00:00Z"},
		{now: "2026-12-07T00:30:00+02:00", clock: "23:00", want: "2026-12-05T23:00:00Z"},
		{now: "2026-01-01T05:00:00Z", clock: "22:30", want: "2025-12-31T22:30:00Z"},
		{now: "2026-12-07T13:05:00Z", clock: "now", want: "2026-12-07T13:05:00Z"},
		{now: "2026-12-07T13:05:00Z", clock: "noon", err: true},
		{now: "2026-12-07T13:05:00Z", clock: "25:00", err: true},
	}
	for _, tc := range tests {
		got, err := prefillEnd(at(tc.now), tc.clock)
		if tc.err {
			if err == nil {
				t.Errorf("prefillEnd(%s, %q) = %v, want an error", tc.now, tc.clock, got)
			}
			continue
		}
		if err != nil || !got.Equal(at(tc.want)) {
			t.Errorf("prefillEnd(%s, %q) = %v, %v; want %s", tc.now, tc.clock, got, err, tc.want)
		}
	}
}
