package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// GenerateFunnels writes n funnel definitions over the demo events to a
// file in dir, so that the number of funnels is a benchmark dimension. They
// vary window (1–24h), bucket (hour, day) and time zone; each has three
// steps and groups by channel.
func GenerateFunnels(dir string, n int) error {
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
	return os.WriteFile(filepath.Join(dir, "generated-funnels.yaml"), []byte(strings.Join(docs, "---\n")), 0o644)
}
