package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/broker"
	"github.com/cairn-cjo/cairn/internal/kafkasec"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
)

// selfSigned returns a TLS certificate for 127.0.0.1 and its PEM, to serve
// and to trust.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cairn test broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestRunOverTLSWithSCRAM runs the processor against a broker that only
// speaks TLS and requires SASL/SCRAM-SHA-256, configured as an operator
// would: the CA and mechanism as flags, the password from the environment.
// Every event must get its output, read back over the same secured
// connection; a client with the wrong password must be refused.
func TestRunOverTLSWithSCRAM(t *testing.T) {
	cert, caPEM := selfSigned(t)
	b := kafkatest.Start(t, broker.Options{Extra: []kfake.Opt{
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "cairn", "s3cret"),
		kfake.SeedTopics(4, "events"),
	}})
	addr := b.Addrs()[0]
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	secure := func(pass string) []kgo.Opt {
		t.Helper()
		opts, err := kafkasec.Options{CAFile: ca, Mechanism: "SCRAM-SHA-256", User: "cairn", Password: pass}.ClientOpts()
		if err != nil {
			t.Fatal(err)
		}
		return append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)
	}

	evs := genSecureEvents(200)
	cl := kafkatest.Client(t, nil, secure("s3cret")...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, evs...).FirstErr(); err != nil {
		t.Fatalf("producing over TLS+SCRAM: %v", err)
	}
	bad := kafkatest.Client(t, nil, append(secure("wrong"), kgo.RecordRetries(0), kgo.RequestRetries(0))...)
	if err := bad.ProduceSync(ctx, &kgo.Record{Topic: "events", Value: []byte("x")}).FirstErr(); err == nil {
		t.Fatal("a client with the wrong password could produce")
	}

	c := startChildEnv(t, []string{"CAIRN_KAFKA_SASL_PASSWORD=s3cret"}, "run", "--brokers", addr,
		"--kafka-tls-ca", ca, "--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-sasl-user", "cairn",
		"--app-id", "secure", "--definitions", writeCounterDef(t), "--state-dir", t.TempDir(),
		"--http", "127.0.0.1:0", "--session-timeout", "3s", "--log-level", "info")
	var got int
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
		rs, err := engine.ReadCommitted(rctx, "counts", secure("s3cret")...)
		rcancel()
		if got = len(rs); err == nil && got >= len(evs) {
			break
		}
	}
	if got != len(evs) {
		t.Fatalf("%d outputs over TLS+SCRAM, want %d (log %s)", got, len(evs), c.log.Name())
	}
	if code := c.term(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}

// genSecureEvents returns n input records for 10 users.
func genSecureEvents(n int) []*kgo.Record {
	rs := make([]*kgo.Record, n)
	for i := range rs {
		u := fmt.Sprintf("u-%d", i%10)
		v, _ := json.Marshal(kafkatest.Event{UserID: u, Event: "view_item", TS: 1_700_000_000_000 + int64(i), EventID: fmt.Sprintf("s-%d", i)})
		rs[i] = &kgo.Record{Topic: "events", Key: []byte(u), Value: v}
	}
	return rs
}
