package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRestoresSince parses restore lines as the engine logs them (see
// engine.restore) and refuses a line it cannot read, so that a change of
// the log line fails here instead of reporting restores of 0 records.
func TestRestoresSince(t *testing.T) {
	const line = `time=2026-11-23T22:08:03.986Z level=INFO msg="restored partition" partition=2 changelog_from=307 changelog_end=1210 took=19.5ms input_offset=1298`
	tests := []struct {
		name    string
		log     string
		since   string
		records int64
		seconds float64
		wantErr bool
	}{
		{"one restore", line, "2026-11-23T22:08:00Z", 903, 0.0195, false},
		{"two, one before since", strings.Replace(line, "22:08:03", "22:07:00", 1) + "\n" + line, "2026-11-23T22:08:00Z", 903, 0.0195, false},
		{"fields without input_offset", strings.TrimSuffix(line, " input_offset=1298"), "2026-11-23T22:08:00Z", 903, 0.0195, false},
		{"other lines ignored", `time=2026-11-23T22:08:03.986Z level=INFO msg="partitions assigned" partitions="[2 3]"`, "2026-11-23T22:08:00Z", 0, 0, false},
		{"unknown format", strings.Replace(line, "took=", "elapsed=", 1), "2026-11-23T22:08:00Z", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log")
			if err := os.WriteFile(path, []byte(tt.log+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			since, _ := time.Parse(time.RFC3339, tt.since)
			records, seconds, err := restoresSince(path, since)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if records != tt.records || seconds < tt.seconds-1e-9 || seconds > tt.seconds+1e-9 {
				t.Errorf("got %d records in %gs, want %d in %gs", records, seconds, tt.records, tt.seconds)
			}
		})
	}
}
