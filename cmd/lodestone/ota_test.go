package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEnsureSelfSignedOnce(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	created, err := ensureSelfSigned(cert, key)
	if err != nil || !created {
		t.Fatalf("first start: %v %v", created, err)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(pair.Certificate[0])
	if err := c.VerifyHostname("127.0.0.1"); err != nil || !c.IsCA || c.NotAfter.Before(time.Now().AddDate(5, 0, 0)) {
		t.Fatalf("certificate: %v ca=%v until %v", err, c.IsCA, c.NotAfter)
	}
	if st, _ := os.Stat(key); st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", st.Mode())
	}
	before, _ := os.ReadFile(cert)
	if created, err := ensureSelfSigned(cert, key); err != nil || created {
		t.Fatalf("second start regenerated: %v %v", created, err)
	}
	after, _ := os.ReadFile(cert)
	if string(before) != string(after) {
		t.Fatal("certificate changed on restart; devices built with it would stop trusting the server")
	}
	if b, _ := pem.Decode(after); b == nil || b.Type != "CERTIFICATE" {
		t.Fatal("not a PEM certificate")
	}
}

func TestParseSigningKey(t *testing.T) {
	if k, err := parseSigningKey(""); k != nil || err != nil {
		t.Fatal("empty key should disable signing")
	}
	if k, err := parseSigningKey(strings.Repeat("ab", 32)); err != nil || len(k) != 64 {
		t.Fatalf("hex seed: %v", err)
	}
	if _, err := parseSigningKey("c2hvcnQ="); err == nil {
		t.Fatal("short seed accepted")
	}
}
