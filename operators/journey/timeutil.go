package journey

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
	// Embedded zone data, so that a container without /usr/share/zoneinfo
	// still resolves users' time zones instead of silently using UTC.
	_ "time/tzdata"
)

const (
	msPerMinute = int64(60 * 1000)
	msPerDay    = 24 * 60 * msPerMinute
)

var errBadDuration = errors.New("want a positive duration such as 30s, 15m, 2h or 30d")

// parseDuration parses a Go duration, optionally preceded by a number of
// days ("30d", "1d12h"), into milliseconds. It must be positive.
func parseDuration(s string) (int64, error) {
	var days int64
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseInt(s[:i], 10, 32)
		if err != nil || n < 0 {
			return 0, errBadDuration
		}
		days, s = n, s[i+1:]
	}
	var d time.Duration
	if s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d < 0 {
			return 0, errBadDuration
		}
	}
	ms := days*msPerDay + d.Milliseconds()
	if ms <= 0 {
		return 0, errBadDuration
	}
	return ms, nil
}

// parseClock parses "HH:MM" (24 h) into minutes after midnight.
func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("want HH:MM, got %q", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("want HH:MM, got %q", s)
	}
	return hh*60 + mm, nil
}

// nextClock returns the first instant strictly after now (ms) at which the
// wall clock of loc reads minute-of-day min. On a day when min does not
// exist (a DST gap) it uses the same wall time shifted forward by the gap
// (02:30 on a spring-forward day at 02:00 gives 03:30); on a day when min
// occurs twice it returns the first occurrence.
func nextClock(now int64, loc *time.Location, min int) int64 {
	t := time.UnixMilli(now).In(loc)
	y, mo, d := t.Date()
	for i := 0; i < 3; i++ {
		c := time.Date(y, mo, d+i, min/60, min%60, 0, 0, loc)
		if got := c.Hour()*60 + c.Minute(); got != min {
			// time.Date picked an offset that puts the wall clock before
			// the gap; move forward by the difference.
			c = c.Add(time.Duration((min-got+24*60)%(24*60)) * time.Minute)
		}
		if c.UnixMilli() > now {
			return c.UnixMilli()
		}
	}
	// Unreachable: three consecutive days always contain a later min.
	panic("journey: nextClock found no later time")
}

// minuteOfDay returns the wall-clock minute of day of now in loc.
func minuteOfDay(now int64, loc *time.Location) int {
	t := time.UnixMilli(now).In(loc)
	return t.Hour()*60 + t.Minute()
}

// hash10000 maps parts to [0, 10000) with FNV-1a: stable across runs,
// processes and platforms, which holdout and split assignment rely on.
func hash10000(parts ...string) int {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return int(h.Sum64() % 10000)
}
