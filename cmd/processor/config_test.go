package main

import (
	"flag"
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
