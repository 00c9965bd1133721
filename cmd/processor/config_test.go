package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("brokers: [a:1, b:2]\napp-id: from-file\ninput-topic: file-topic\ncommit-interval: 250ms\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAIRN_APP_ID", "from-env")
	t.Setenv("CAIRN_INSTANCE_ID", "env-instance")
	var c Config
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	c.bindFlags(fs)
	if err := parseConfig(fs, []string{"--config", file, "--instance-id", "flag-instance"}); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, got, want string }{
		{"file beats default", c.Brokers, "a:1,b:2"},
		{"env beats file", c.AppID, "from-env"},
		{"flag beats env", c.InstanceID, "flag-instance"},
		{"file only", c.InputTopic, "file-topic"},
		{"default", c.HTTP, "127.0.0.1:8080"},
		{"duration from file", c.CommitInterval.String(), (250 * time.Millisecond).String()},
	}
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	ecfg, err := c.Engine()
	if err != nil {
		t.Fatal(err)
	}
	if got := ecfg.Brokers; len(got) != 2 || got[1] != "b:2" {
		t.Errorf("engine brokers = %v", got)
	}
}

func TestConfigErrorsNameTheSource(t *testing.T) {
	t.Setenv("CAIRN_COMMIT_INTERVAL", "soon")
	var c Config
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	c.bindFlags(fs)
	err := parseConfig(fs, nil)
	if err == nil || !strings.Contains(err.Error(), "CAIRN_COMMIT_INTERVAL") {
		t.Fatalf("err = %v, want it to name CAIRN_COMMIT_INTERVAL", err)
	}
	c = Config{LogLevel: "loud"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--definitions") || !strings.Contains(err.Error(), "--log-level") {
		t.Fatalf("Validate = %v", err)
	}
}

// TestOperationsDocListsEveryOption keeps docs/operations.md and the flags
// in step: every flag, its variable and its default must be in the table.
func TestOperationsDocListsEveryOption(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	c.bindFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		env := "CAIRN_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		row := ""
		for _, l := range strings.Split(string(doc), "\n") {
			if strings.HasPrefix(l, "| `--"+f.Name+"` |") {
				row = l
			}
		}
		if row == "" {
			t.Errorf("docs/operations.md has no row for --%s", f.Name)
			return
		}
		if !strings.Contains(row, "`"+env+"`") {
			t.Errorf("row of --%s does not name %s", f.Name, env)
		}
		if f.DefValue != "" && !strings.Contains(row, "`"+f.DefValue+"`") {
			t.Errorf("row of --%s does not give its default %q", f.Name, f.DefValue)
		}
	})
}

// TestHTTPSecurityConfig checks how the --http-* security flags combine
// (config_http.go); errors name the flag and never the token.
func TestHTTPSecurityConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const tok = "0123456789abcdef0123"
	good, empty, big := write("good", "  "+tok+"\n"), write("empty", "\n"), write("big", strings.Repeat("x", 5000))
	cases := []struct {
		name      string
		args      []string
		env       map[string]string
		wantErr   string // substring; "" for none
		wantToken string
		wantRead  string
	}{
		{"defaults: no tokens", nil, nil, "", "", ""},
		{"token flag", []string{"--http-token", tok}, nil, "", tok, ""},
		{"token from env", nil, map[string]string{"CAIRN_HTTP_TOKEN": tok}, "", tok, ""},
		{"token file, whitespace trimmed", []string{"--http-token-file", good}, nil, "", tok, ""},
		{"read token file from env", nil, map[string]string{"CAIRN_HTTP_READ_TOKEN_FILE": good}, "", "", tok},
		{"token and token file", []string{"--http-token", tok, "--http-token-file", good}, nil, "--http-token and --http-token-file: give one", "", ""},
		{"missing file", []string{"--http-token-file", filepath.Join(dir, "nope")}, nil, "--http-token-file: reading token file", "", ""},
		{"empty file", []string{"--http-read-token-file", empty}, nil, "--http-read-token-file: reading token file " + empty + ": it is empty", "", ""},
		{"file too large", []string{"--http-token-file", big}, nil, "is it the right file?", "", ""},
		{"short token", []string{"--http-token", "secret"}, nil, "--http-token: too short", "", ""},
		{"insecure on loopback", []string{"--http-insecure-mutations"}, nil, "", "", ""},
		{"insecure on localhost", []string{"--http-insecure-mutations", "--http", "localhost:9"}, nil, "", "", ""},
		{"insecure on ::1", []string{"--http-insecure-mutations", "--http", "[::1]:9"}, nil, "", "", ""},
		{"insecure on every interface", []string{"--http-insecure-mutations", "--http", ":8080"}, nil, "only with a loopback --http", "", ""},
		{"insecure on 0.0.0.0", []string{"--http-insecure-mutations", "--http", "0.0.0.0:8080"}, nil, "only with a loopback --http", "", ""},
		{"insecure and token", []string{"--http-insecure-mutations", "--http-token-file", good}, nil, "choose one", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var c Config
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			c.bindFlags(fs)
			if err := parseConfig(fs, tc.args); err != nil {
				t.Fatal(err)
			}
			o, err := c.apiOptions(nil)
			if (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("apiOptions: %v, want %q", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), tok) {
				t.Fatalf("the error shows the token: %v", err)
			}
			if err == nil && (o.Token != tc.wantToken || o.ReadToken != tc.wantRead) {
				t.Fatalf("tokens %q, %q; want %q, %q", o.Token, o.ReadToken, tc.wantToken, tc.wantRead)
			}
			if s := fmt.Sprintf("%v %+v", c, c); strings.Contains(s, tok) {
				t.Fatalf("printing the config shows the token: %s", s)
			}
		})
	}
}

func TestShadowUntil(t *testing.T) {
	cases := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"", time.Time{}, false},
		{"2026-11-22", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), false},
		{"2026-11-22T18:00:00Z", time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC), false},
		{"2026-11-22T19:00:00+01:00", time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC), false},
		{"now", time.Time{}, true},
		{"1h", time.Time{}, true},
		{"22/11/2026", time.Time{}, true},
	}
	for _, tc := range cases {
		c := Config{Definitions: "d", StateDir: "s", LogLevel: "info", HTTP: "127.0.0.1:0", ShadowUntil: tc.in}
		ecfg, err := c.Engine()
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: Engine error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if verr := c.Validate(); (verr != nil) != tc.wantErr || (verr != nil && !strings.Contains(verr.Error(), "--shadow-until")) {
			t.Errorf("%q: Validate = %v", tc.in, verr)
		}
		if err == nil && !ecfg.ShadowUntil.Equal(tc.want) {
			t.Errorf("%q: ShadowUntil = %v, want %v", tc.in, ecfg.ShadowUntil, tc.want)
		}
	}
}

func TestFetchPartitionBytes(t *testing.T) {
	cases := []struct {
		in      int
		want    int32 // engine.Config.FetchMaxPartitionBytes after defaults
		wantErr bool
	}{
		{0, 1 << 20, false}, // a Config literal: the engine's default
		{1 << 20, 1 << 20, false},
		{1024, 1024, false},
		{100, 0, true},
		{-1, 0, true},
		{2 << 30, 0, true},
	}
	for _, tc := range cases {
		c := Config{Definitions: "d", StateDir: "s", LogLevel: "info", HTTP: "127.0.0.1:0", FetchPartition: tc.in}
		verr := c.Validate()
		if (verr != nil) != tc.wantErr || (verr != nil && !strings.Contains(verr.Error(), "--fetch-partition-bytes")) {
			t.Errorf("%d: Validate = %v, want error %v naming the flag", tc.in, verr, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		ecfg, err := c.Engine()
		if err != nil {
			t.Fatalf("%d: Engine: %v", tc.in, err)
		}
		ecfg.EnsureDefaults()
		if ecfg.FetchMaxPartitionBytes != tc.want {
			t.Errorf("%d: FetchMaxPartitionBytes = %d, want %d", tc.in, ecfg.FetchMaxPartitionBytes, tc.want)
		}
	}
}
