// Package kafkasec turns Cairn's Kafka security options (TLS and SASL) into
// franz-go client options, so that every client a process creates (the
// engine's session, restore and admin clients, the aggregates table, the
// API's producer) connects the same way.
package kafkasec

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Options are the TLS and SASL settings of Kafka connections. The zero
// value is plaintext without authentication. Each field names the
// `processor run` flag that sets it.
type Options struct {
	TLS        bool   // --kafka-tls: TLS with the system's roots
	CAFile     string // --kafka-tls-ca: PEM roots to trust instead (implies TLS)
	CertFile   string // --kafka-tls-cert: client certificate, PEM (implies TLS; needs KeyFile)
	KeyFile    string // --kafka-tls-key: its private key, PEM
	ServerName string // --kafka-tls-server-name: name to verify instead of the broker's host

	Mechanism    string // --kafka-sasl-mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	User         string // --kafka-sasl-user
	Password     string // --kafka-sasl-password (prefer the file or CAIRN_KAFKA_SASL_PASSWORD)
	PasswordFile string // --kafka-sasl-password-file: the password, trailing newline ignored
}

// tlsEnabled reports whether any TLS option is set.
func (o Options) tlsEnabled() bool {
	return o.TLS || o.CAFile != "" || o.CertFile != "" || o.KeyFile != "" || o.ServerName != ""
}

// ClientOpts returns the franz-go options for o: a TLS dialer and a SASL
// mechanism as configured. Every problem is reported, naming its flag;
// files are read once, here.
func (o Options) ClientOpts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	var errs []error
	if o.tlsEnabled() {
		cfg, err := o.tlsConfig()
		if err != nil {
			errs = append(errs, err)
		} else {
			dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
			opts = append(opts, kgo.Dialer(dialer.DialContext))
		}
	}
	if o.Mechanism != "" || o.User != "" || o.Password != "" || o.PasswordFile != "" {
		m, err := o.mechanism()
		if err != nil {
			errs = append(errs, err)
		} else {
			opts = append(opts, kgo.SASL(m))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return opts, nil
}

func (o Options) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	var errs []error
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("--kafka-tls-ca: %w", err))
		} else {
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("--kafka-tls-ca %s: no PEM certificate in it", o.CAFile))
			}
		}
	}
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("--kafka-tls-cert/--kafka-tls-key: %w", err))
		} else {
			cfg.Certificates = []tls.Certificate{cert}
		}
	case o.CertFile != "" || o.KeyFile != "":
		errs = append(errs, errors.New("--kafka-tls-cert and --kafka-tls-key go together"))
	}
	return cfg, errors.Join(errs...)
}

func (o Options) mechanism() (sasl.Mechanism, error) {
	pass := o.Password
	var errs []error
	if o.PasswordFile != "" {
		if pass != "" {
			errs = append(errs, errors.New("--kafka-sasl-password and --kafka-sasl-password-file: give one"))
		}
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("--kafka-sasl-password-file: %w", err))
		}
		pass = strings.TrimRight(string(b), "\r\n")
	}
	if o.User == "" {
		errs = append(errs, errors.New("--kafka-sasl-user: required with SASL"))
	}
	if pass == "" {
		errs = append(errs, errors.New("--kafka-sasl-password (or -file): required with SASL"))
	}
	var m sasl.Mechanism
	switch strings.ToUpper(o.Mechanism) {
	case "PLAIN":
		m = plain.Auth{User: o.User, Pass: pass}.AsMechanism()
	case "SCRAM-SHA-256":
		m = scram.Auth{User: o.User, Pass: pass}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		m = scram.Auth{User: o.User, Pass: pass}.AsSha512Mechanism()
	case "":
		errs = append(errs, errors.New("--kafka-sasl-mechanism: required with a SASL user or password (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"))
	default:
		errs = append(errs, fmt.Errorf("--kafka-sasl-mechanism %q: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", o.Mechanism))
	}
	return m, errors.Join(errs...)
}
