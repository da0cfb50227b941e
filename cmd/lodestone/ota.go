package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/fuota"
	"github.com/lodestone-fleet/lodestone/leader"
	"github.com/lodestone-fleet/lodestone/ota"
)

// otaTickInterval is how often campaigns advance. Waves soak for hours; a minute is plenty (--jobs-interval, when
// shorter, makes it shorter: tests follow a campaign wave by wave in seconds).
const otaTickInterval = time.Minute

// parseSigningKey reads OTA_SIGNING_KEY: an ed25519 seed of 32 bytes as hex or base64. Empty disables signing.
func parseSigningKey(s string) (ed25519.PrivateKey, error) {
	if s == "" {
		return nil, nil
	}
	seed, err := hex.DecodeString(s)
	if err != nil {
		seed, err = base64.StdEncoding.DecodeString(s)
	}
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("OTA_SIGNING_KEY must be a 32-byte ed25519 seed, hex or base64")
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ddiStore is the backend's keeper of hawkBit DDI actions (they live with its OTA tables), under the wrapper
// that serve opens stores in.
func ddiStore(db lodestone.Store) lodestone.DDIStore {
	if o, ok := db.(*openedStore); ok {
		db = o.Store
	}
	d, _ := db.(lodestone.DDIStore)
	return d
}

// newOTA builds the OTA service and campaign runner over the store; campaign halts are published on events.
func newOTA(cfg Config, db lodestone.Store, events lodestone.EventPublisher, log *slog.Logger) (*ota.Service,
	*ota.Campaigns, error) {
	key, err := parseSigningKey(cfg.OTASigningKey)
	if err != nil {
		return nil, nil, err
	}
	svc := ota.NewService(db, db, ota.Config{SigningKey: key, Logger: log, Events: events, DDI: ddiStore(db)})
	return svc, ota.NewCampaigns(svc), nil
}

// campaignJob advances campaigns on the replica that runs the periodic jobs; Tick keeps all state in the database,
// so leadership can move between ticks.
func campaignJob(c *ota.Campaigns, jobsInterval time.Duration) leader.Job {
	// As lodestone itself: the waves it offers and the campaigns its health gate halts are audited.
	return leader.Job{Name: "ota-campaigns", Every: min(otaTickInterval, jobsInterval), Run: func(ctx context.Context) error {
		return c.Tick(lodestone.SystemContext(ctx, "ota-campaigns"))
	}}
}

// fuotaServer returns the ESP32 FUOTA listener's server, or nil when US_AUTH_USERNAME/US_AUTH_PASSWORD are unset
// (the API has no other protection, so it never runs open).
func fuotaServer(cfg Config, svc *ota.Service, blobs lodestone.BlobStore, log *slog.Logger,
	stderr func(string)) (*http.Server, error) {
	if cfg.FUOTAUser == "" && cfg.FUOTAPass == "" {
		return nil, nil
	}
	h, err := fuota.New(fuota.Config{Username: cfg.FUOTAUser, Password: cfg.FUOTAPass, Logger: log}, svc, blobs)
	if err != nil {
		return nil, err
	}
	cert, key := cfg.FUOTACert, cfg.FUOTAKey
	if (cert == "") != (key == "") {
		return nil, errors.New("FUOTA_TLS_CERT and FUOTA_TLS_KEY go together")
	}
	if cert == "" {
		cert, key = filepath.Join(cfg.DataDir, "fuota_cert.pem"), filepath.Join(cfg.DataDir, "fuota_key.pem")
		created, err := ensureSelfSigned(cert, key)
		if err != nil {
			return nil, err
		}
		if created {
			stderr(fmt.Sprintf("\n  lodestone generated a self-signed certificate for the FUOTA listener.\n"+
				"  Build it into the ESP32 firmware as the CA certificate:\n\n      %s\n\n", cert))
		}
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("FUOTA TLS certificate: %w", err)
	}
	srv := &http.Server{
		Addr:    cfg.FUOTAAddr,
		Handler: h,
		// A client that offers ALPN must share a protocol with us or the handshake fails, and `curl --http1.0`
		// offers only http/1.0: list it beside http/1.1 (net/http serves both the same way) after h2.
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1", "http/1.0"}},
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	cfg.Timeouts.Apply(srv)
	return srv, nil
}

// ensureSelfSigned writes an ECDSA P-256 certificate and key unless both files exist. ESP-IDF's mbedTLS verifies
// P-256, and its handshakes cost a fraction of RSA-2048's, which matters when every device check is a new one.
func ensureSelfSigned(certPath, keyPath string) (bool, error) {
	if _, err := os.Stat(certPath); err == nil {
		if _, err := os.Stat(keyPath); err == nil {
			return false, nil
		}
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return false, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "lodestone FUOTA " + host},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // the device pins it as its CA certificate
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host != "" && !strings.ContainsAny(host, " /") {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ipn.IP)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return false, fmt.Errorf("create FUOTA certificate: %w", err)
	}
	kb, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		return false, err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return false, fmt.Errorf("write FUOTA key: %w", err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return false, fmt.Errorf("write FUOTA certificate: %w", err)
	}
	return true, nil
}
