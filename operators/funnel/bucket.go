package funnel

import (
	"math"
	"time"
)

// bucketMargin is added to a bucket's computed end when deciding that the
// bucket can no longer change: time.Date may resolve a local midnight that
// falls in a DST gap to either side of the gap, so the computed end can be
// early by at most the size of the gap (1 hour, or 30 minutes in a few
// zones). Keeping a bucket's state one hour longer is harmless.
const bucketMargin = int64(time.Hour / time.Millisecond)

// bucketLen is the nominal length of the definition's bucket, in ms: 24 h
// for day, 1 h for hour. It sets the late-event horizon (window + one
// bucket), which must not depend on DST.
func (d *Definition) bucketLen() int64 {
	if d.hourly {
		return int64(time.Hour / time.Millisecond)
	}
	return int64(24 * time.Hour / time.Millisecond)
}

// windowMs is the window in ms.
func (d *Definition) windowMs() int64 { return d.windowMS }

// around returns [ts - window, ts + window], clamped to the int64 range:
// the events an attempt that ts can deepen may start and end at.
func (d *Definition) around(ts int64) (from, to int64) {
	from, to = ts-d.windowMS, ts+d.windowMS
	if from > ts {
		from = math.MinInt64
	}
	if to < ts {
		to = math.MaxInt64
	}
	return from, to
}

// maxShift bounds how far a clock change moves a zone's local time back:
// an hour in most zones, two in Antarctica/Troll. A bucket (a local
// calendar hour or day) lasts at most its nominal length plus that. Not
// covered: 19th-century changes by a whole day (America/Sitka in 1867),
// where a recount of an event in order could miss an attempt of the
// longer bucket.
const maxShift = int64(2 * time.Hour / time.Millisecond)

// bucketStartBound returns a time at or before the start of the bucket
// whose end bucketOf gave as end.
func (d *Definition) bucketStartBound(end int64) int64 {
	return end - bucketMargin - d.bucketLen() - maxShift
}

// horizon is how far behind a user's latest event an event may be and still
// count: window + one bucket.
func (d *Definition) horizon() int64 { return d.windowMS + d.bucketLen() }

// retention is how far behind a user's latest event stored step events are
// kept: an accepted event at latest-horizon can extend an attempt that began
// one window before it, so retention = horizon + window.
func (d *Definition) retention() int64 { return d.horizon() + d.windowMS }

// bucketOf returns the label of the bucket holding ts, in the definition's
// time zone ("2026-11-22" or "2026-11-22T13"), and an upper bound of the
// bucket's end in ms (the first instant with a later label, plus
// bucketMargin).
//
// Buckets are local calendar labels, so they follow DST: a day lasts 23 or
// 25 hours on a change, the repeated hour of a fall-back change is one
// two-hour bucket and the skipped hour of a spring-forward change has none.
func (d *Definition) bucketOf(ts int64) (label string, end int64) {
	t := time.UnixMilli(ts).In(d.loc)
	y, m, day := t.Date()
	var next time.Time
	var buf [16]byte
	if d.hourly {
		label = string(t.AppendFormat(buf[:0], "2006-01-02T15"))
		next = time.Date(y, m, day, t.Hour()+1, 0, 0, 0, d.loc)
	} else {
		label = string(t.AppendFormat(buf[:0], "2006-01-02"))
		next = time.Date(y, m, day+1, 0, 0, 0, 0, d.loc)
	}
	return label, next.UnixMilli() + bucketMargin
}

// bucketCache memoizes bucketOf, a pure function of (time zone, bucket
// size, ts): the attempts an event may deepen are recomputed on every
// event, for every funnel, and most funnels share a few zones. Entries are
// per minute of ts when the whole minute falls in one bucket, which is true
// of every bucket whose start and end are whole minutes (every zone offset
// since 1972 is); other timestamps are computed every time. It is a
// direct-mapped table of bucketCacheSize entries (a colliding minute
// replaces the entry), so a lookup costs a multiplication and a comparison.
// The zero value is ready; a nil cache computes every time.
type bucketCache struct {
	e *[bucketCacheSize]bucketEntry
}

type bucketKey struct {
	loc    *time.Location // New shares one Location per zone name
	hour   bool
	minute int64 // ts floor-divided by one minute
}

type bucketEntry struct {
	key   bucketKey
	label string
	end   int64
}

// bucketCacheSize is the number of entries of a bucketCache: 1<<12, to match
// the 12 bits of the hash in of.
const bucketCacheSize = 1 << 12

const minuteMs = int64(time.Minute / time.Millisecond)

func (c *bucketCache) of(d *Definition, ts int64) (string, int64) {
	if c == nil {
		return d.bucketOf(ts)
	}
	minute := ts / minuteMs
	if ts < 0 && ts%minuteMs != 0 {
		minute-- // floor
	}
	k := bucketKey{loc: d.loc, hour: d.hourly, minute: minute}
	if c.e == nil {
		c.e = new([bucketCacheSize]bucketEntry)
	}
	h := uint64(minute)<<10 ^ uint64(d.zoneSlot)<<1
	if k.hour {
		h ^= 1
	}
	slot := &c.e[(h*0x9e3779b97f4a7c15)>>52] // Fibonacci hashing: the top 12 bits
	if slot.key == k && slot.label != "" {
		return slot.label, slot.end
	}
	label, end := d.bucketOf(ts)
	first, _ := d.bucketOf(minute * minuteMs)
	last, _ := d.bucketOf(minute*minuteMs + minuteMs - 1)
	if first != label || last != label {
		return label, end // a bucket boundary inside this minute
	}
	*slot = bucketEntry{key: k, label: label, end: end}
	return label, end
}
