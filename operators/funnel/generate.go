package funnel

import (
	"fmt"
	"strings"
)

// GenerateDefinitions returns n funnel definitions (YAML documents) over the
// demo events, for benchmarks where the number of funnels is a dimension:
// three steps each, windows of 1–24 h, hour and day buckets, two time
// zones, grouped by channel. The same n always gives the same text.
func GenerateDefinitions(n int) string {
	names := []string{"app_open", "view_item", "add_to_cart", "purchase"}
	var docs []string
	for i := 0; i < n; i++ {
		bucket, tz := "hour", "Europe/Paris"
		if i%2 == 1 {
			bucket = "day"
		}
		if i%3 != 0 {
			tz = "UTC"
		}
		docs = append(docs, fmt.Sprintf("kind: funnel\nid: gen-%02d\nwindow: %dh\nsteps: [{event: %s}, {event: %s}, {event: %s}]\ngroup_by: 'event.props.channel'\nbucket: %s\ntimezone: %s\n",
			i, 1+i%24, names[i%4], names[(i+1)%4], names[(i+2)%4], bucket, tz))
	}
	return strings.Join(docs, "---\n")
}
