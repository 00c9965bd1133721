package journey

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// scheduleSpec is a broadcast entry, `entry: {schedule: {cron, timezone,
// segment}}`: at each tick of the cron schedule in the time zone, every
// member of the segment on the partition enters (broadcast.go). It is
// immutable after New and safe for concurrent use.
type scheduleSpec struct {
	cron    string // as written
	zone    string // IANA name as written; "" is UTC
	segment string
	spec    *cron.SpecSchedule // Location is loc
	loc     *time.Location
	fp      string // identifies cron, zone and segment: changing one re-arms the timer
}

// cronParser accepts the five standard fields (minute hour day-of-month
// month day-of-week) and the calendar descriptors (@daily, @weekly, …).
// @every is parsed too, and then rejected by parseSchedule: its ticks
// depend on when the timer was first armed rather than on the calendar.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

var (
	errCronZone  = errors.New("put the time zone in timezone, not in the cron expression")
	errCronEvery = errors.New("@every is not supported: a schedule must follow the calendar")
	errCronNever = errors.New("the schedule has no tick in the next five years")
)

// loadZone resolves a schedule's IANA zone name; "" is UTC. "Local" is
// rejected: it would make ticks depend on the machine.
func loadZone(zone string) (*time.Location, error) {
	loc, err := time.LoadLocation(zone)
	if err != nil || zone == "Local" {
		return nil, fmt.Errorf("unknown time zone %q: want an IANA name such as Asia/Shanghai", zone)
	}
	return loc, nil
}

// parseSchedule compiles a cron expression in loc, the zone named zone.
func parseSchedule(expr, zone string, loc *time.Location, segment string) (*scheduleSpec, error) {
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return nil, errCronZone
	}
	s, err := cronParser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("bad cron expression %q: %w", expr, err)
	}
	spec, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, errCronEvery
	}
	spec.Location = loc
	sc := &scheduleSpec{cron: expr, zone: zone, segment: segment, spec: spec, loc: loc,
		fp: expr + "\x00" + zone + "\x00" + segment}
	if _, ok := sc.next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()); !ok {
		return nil, errCronNever
	}
	return sc, nil
}

// next returns the first tick strictly after the event time after (ms),
// and false if the schedule has none in the following five years. It is a
// pure function of after, so every replay computes the same ticks.
//
// Daylight saving time: a wall-clock time that a spring-forward skips does
// not fire that day (robfig/cron steps through real time); one that a
// fall-back repeats fires once, at its first occurrence.
func (s *scheduleSpec) next(after int64) (int64, bool) {
	from := time.UnixMilli(after).In(s.loc)
	t := s.spec.Next(from)
	if !t.IsZero() && sameMinute(t, from) {
		t = s.spec.Next(t) // the repeat of a fall-back hour
	}
	if t.IsZero() {
		return 0, false
	}
	return t.UnixMilli(), true
}

// sameMinute reports whether a and b, in one location, show the same wall
// clock to the minute.
func sameMinute(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd && a.Hour() == b.Hour() && a.Minute() == b.Minute()
}
