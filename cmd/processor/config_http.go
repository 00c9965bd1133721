package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/cairn-cjo/cairn/internal/api"
)

// secret is a flag value that never prints: String (and so %v of a Config,
// and flag usage) shows "[redacted]" once it is set.
type secret string

func (s secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// Set implements flag.Value.
func (s *secret) Set(v string) error { *s = secret(v); return nil }

// LogValue keeps the secret out of slog lines too.
func (s secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// maxTokenFile bounds a token file: a token is tens of bytes, so anything
// larger is the wrong file.
const maxTokenFile = 4 << 10

// apiOptions resolves the HTTP security flags into api.Options: it reads the
// token files and checks the combinations. log receives the audit lines
// (nil: slog.Default()). Errors name the flags, never the tokens.
func (c *Config) apiOptions(log *slog.Logger) (api.Options, error) {
	tok, errTok := resolveToken("--http-token", string(c.HTTPToken), c.HTTPTokenFile)
	read, errRead := resolveToken("--http-read-token", string(c.HTTPReadToken), c.HTTPReadFile)
	errs := []error{errTok, errRead}
	if c.HTTPInsecure && tok != "" {
		errs = append(errs, errors.New("--http-insecure-mutations: not with --http-token: choose one"))
	}
	if c.HTTPInsecure && !isLoopback(c.HTTP) {
		errs = append(errs, fmt.Errorf("--http-insecure-mutations: only with a loopback --http (127.0.0.1, [::1] or localhost), not %q", c.HTTP))
	}
	o := api.Options{Addr: c.HTTP, Token: tok, ReadToken: read, InsecureMutations: c.HTTPInsecure, Logger: log}
	return o, errors.Join(errs...)
}

// resolveToken returns the token given by value or in file (at most one of
// them) and checks it (api.CheckToken).
func resolveToken(flagName, value, file string) (string, error) {
	if value != "" && file != "" {
		return "", fmt.Errorf("%s and %s-file: give one", flagName, flagName)
	}
	name := flagName
	if file != "" {
		name += "-file"
		b, err := readTokenFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		value = b
	}
	if err := api.CheckToken(value); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return value, nil
}

// readTokenFile returns the content of path without surrounding whitespace
// (the newline of `echo` or of a mounted secret).
func readTokenFile(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("reading token file: %w", err)
	}
	if st.Size() > maxTokenFile {
		return "", fmt.Errorf("reading token file %s: %d bytes, a token is far shorter: is it the right file?", path, st.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("reading token file %s: it is empty", path)
	}
	return tok, nil
}

// isLoopback reports whether addr (host:port) listens on loopback only. An
// empty host (":8080") means every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// logHTTPExposure says at start what the HTTP API lets through, warning
// when reads are open beyond loopback.
func logHTTPExposure(log *slog.Logger, o api.Options) {
	switch {
	case o.Token == "" && !o.InsecureMutations:
		log.Info("HTTP API mutations are disabled: no --http-token (list uploads answer 403)")
	case o.InsecureMutations:
		log.Warn("HTTP API mutations need no token (--http-insecure-mutations): anyone on this host can upload lists")
	}
	if o.ReadToken == "" && !isLoopback(o.Addr) {
		log.Warn("HTTP API reads are open on a non-loopback address: anyone who reaches it reads user profiles; set --http-read-token-file",
			"http", o.Addr)
	}
}
