package fuota_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func p256Cert(tb testing.TB) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// checkServer starts the handler over TLS with a P-256 certificate and one device row.
func checkServer(b *testing.B) (*httptest.Server, *x509.CertPool) {
	e := newEnvTB(b)
	e.req("PUT", "/files/fw.bin", []byte("firmware"), true)
	e.req("PUT", "/devices/dev-1", []byte(`"dev-1","1.0","fw.bin"`), true)
	srv := httptest.NewUnstartedServer(e.srv.Config.Handler)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{p256Cert(b)}}
	srv.StartTLS()
	b.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return srv, pool
}

func check(b *testing.B, c *http.Client, url string) {
	req, _ := http.NewRequest("GET", url, nil)
	req.SetBasicAuth(user, pass)
	resp, err := c.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Errorf("status %d", resp.StatusCode)
	}
}

// BenchmarkCheckTLSHandshake is an ESP32's update check: a new TCP connection and a full TLS handshake each time.
//
//	go test ./fuota -run '^$' -bench CheckTLSHandshake -benchtime 5s
func BenchmarkCheckTLSHandshake(b *testing.B) {
	srv, pool := checkServer(b)
	url := srv.URL + "/devices/dev-1?app_ver=1.0"
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}
			check(b, &http.Client{Transport: tr}, url)
			tr.CloseIdleConnections()
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "checks/s")
}

// BenchmarkCheckKeepAlive is the same check over kept-alive TLS connections.
//
//	go test ./fuota -run '^$' -bench CheckKeepAlive -benchtime 5s
func BenchmarkCheckKeepAlive(b *testing.B) {
	srv, pool := checkServer(b)
	url := srv.URL + "/devices/dev-1?app_ver=1.0"
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 64}
	c := &http.Client{Transport: tr}
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			check(b, c, url)
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "checks/s")
}
