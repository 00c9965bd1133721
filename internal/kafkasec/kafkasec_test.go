package kafkasec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClientOpts(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	notPEM := write("ca.txt", "not a certificate")
	pass := write("pass", "s3cret\n")
	tests := []struct {
		name    string
		o       Options
		opts    int
		wantErr []string // substrings, each must be in the error
	}{
		{"plaintext", Options{}, 0, nil},
		{"tls with system roots", Options{TLS: true}, 1, nil},
		{"server name implies tls", Options{ServerName: "kafka"}, 1, nil},
		{"plain", Options{Mechanism: "PLAIN", User: "u", Password: "p"}, 1, nil},
		{"scram from a file, any case", Options{Mechanism: "scram-sha-512", User: "u", PasswordFile: pass}, 1, nil},
		{"tls and scram", Options{TLS: true, Mechanism: "SCRAM-SHA-256", User: "u", Password: "p"}, 2, nil},
		{"unknown mechanism", Options{Mechanism: "GSSAPI", User: "u", Password: "p"}, 0, []string{`--kafka-sasl-mechanism "GSSAPI"`}},
		{"user without mechanism", Options{User: "u", Password: "p"}, 0, []string{"--kafka-sasl-mechanism: required"}},
		{"no user, no password", Options{Mechanism: "PLAIN"}, 0, []string{"--kafka-sasl-user", "--kafka-sasl-password"}},
		{"password twice", Options{Mechanism: "PLAIN", User: "u", Password: "p", PasswordFile: pass}, 0, []string{"give one"}},
		{"missing password file", Options{Mechanism: "PLAIN", User: "u", PasswordFile: filepath.Join(dir, "nope")}, 0, []string{"--kafka-sasl-password-file"}},
		{"ca not pem", Options{CAFile: notPEM}, 0, []string{"--kafka-tls-ca", "no PEM certificate"}},
		{"cert without key", Options{CertFile: notPEM}, 0, []string{"go together"}},
		{"every problem at once", Options{CAFile: notPEM, Mechanism: "X"}, 0, []string{"--kafka-tls-ca", "--kafka-sasl-mechanism", "--kafka-sasl-user"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := tt.o.ClientOpts()
			if len(tt.wantErr) == 0 {
				if err != nil || len(opts) != tt.opts {
					t.Fatalf("got %d options, error %v; want %d options", len(opts), err, tt.opts)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one naming %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}
