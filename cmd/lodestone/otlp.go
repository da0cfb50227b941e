package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/netguard"
	"github.com/lodestone-fleet/lodestone/otlp"
)

// OTLPConfig is the log and crash receiver's part of Config.
type OTLPConfig struct {
	GRPC, HTTP      string // listen addresses; empty disables one
	TokensConfig    string // detritus' token file; the receiver runs only when it is set
	MaxMessage      int
	MaxDumpBytes    int64
	LogsTTLDays     int
	CrashesTTLDays  int
	RequireVersion  bool
	JanitorInterval time.Duration
}

func defaultOTLPConfig() OTLPConfig {
	return OTLPConfig{GRPC: ":4317", HTTP: ":4318", MaxMessage: otlp.DefaultMaxMessageBytes,
		MaxDumpBytes: otlp.DefaultMaxDumpBytes, LogsTTLDays: 14, CrashesTTLDays: 90, JanitorInterval: time.Hour}
}

func init() {
	envVars = append(envVars, envVar{"LODESTONE_TOKENS_CONFIG",
		str(func(c *Config) *string { return &c.OTLP.TokensConfig }),
		"detritus token file (TOML); enables the OTLP log and crash receiver"})
}

func (o *OTLPConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.GRPC, "otlp-grpc", o.GRPC, "OTLP `address` serving gRPC, HTTP/1.1 and h2c on one socket: logs, POST /v1/crashes, /healthz, /metrics (needs --tokens-config; empty disables)")
	fs.StringVar(&o.HTTP, "otlp-http", o.HTTP, "OTLP/HTTP `address` (POST /v1/logs and the same routes; needs --tokens-config; empty disables)")
	fs.StringVar(&o.TokensConfig, "tokens-config", o.TokensConfig, "detritus token `file` (TOML, Argon2 secrets); enables the OTLP receiver (env LODESTONE_TOKENS_CONFIG)")
	fs.IntVar(&o.MaxMessage, "otlp-max-message", o.MaxMessage, "largest OTLP gRPC message or /v1/logs body in `bytes`")
	fs.Int64Var(&o.MaxDumpBytes, "max-dump-bytes", o.MaxDumpBytes, "largest crash dump or attachment part in `bytes`")
	fs.IntVar(&o.LogsTTLDays, "logs-ttl-days", o.LogsTTLDays, "days of OTLP log records to keep")
	fs.IntVar(&o.CrashesTTLDays, "crashes-ttl-days", o.CrashesTTLDays, "days of crash uploads to keep")
	fs.DurationVar(&o.JanitorInterval, "janitor-interval", o.JanitorInterval, "how often expired logs, crash uploads and their blobs are removed")
	fs.BoolVar(&o.RequireVersion, "otlp-require-version", o.RequireVersion, "refuse gRPC exports without x-protocol-version, as detritusd does (stock OpenTelemetry exporters never send it)")
}

// startOTLP starts the receiver when a token file is configured. wait returns once it has stopped (after ctx
// ends) with its error; failed delivers an error if it stops on its own.
func startOTLP(ctx context.Context, c OTLPConfig, guard listenGuard, db lodestone.Store, blobs lodestone.BlobStore,
	events, batches lodestone.EventPublisher, committers int, log *slog.Logger) (wait func() error, failed <-chan error, err error) {
	none := func() error { return nil }
	if c.TokensConfig == "" {
		log.Info("OTLP receiver off: set --tokens-config to receive logs and crash uploads")
		return none, nil, nil
	}
	tf, err := otlp.LoadTokenFile(c.TokensConfig)
	if err != nil {
		return nil, nil, err
	}
	logs, ok1 := db.(lodestone.LogStore)
	crashes, ok2 := db.(lodestone.CrashUploadStore)
	if !ok1 || !ok2 {
		return nil, nil, fmt.Errorf("otlp: the store does not keep logs and crash uploads")
	}
	retention := otlp.RetentionConfig{LogsTTL: days(c.LogsTTLDays), CrashesTTL: days(c.CrashesTTLDays),
		Interval: c.JanitorInterval}
	// Identical bytes are stored once, so a crash blob may also be a firmware image or an ELF file.
	if fw, ok := db.(interface {
		FirmwareBlobInUse(ctx context.Context, sha256 string) (bool, error)
	}); ok {
		retention.BlobInUse = fw.FirmwareBlobInUse
	}
	srv, err := otlp.New(otlp.Config{Tokens: tf, MaxMessageBytes: c.MaxMessage, MaxDumpBytes: c.MaxDumpBytes,
		RequireProtocolVersion: c.RequireVersion, Writer: otlp.WriterConfig{Committers: committers},
		Retention: retention, Timeouts: guard.cfg.Timeouts},
		otlp.Deps{Logs: logs, Crashes: crashes, Blobs: blobs, Events: events, Batches: batches, Logger: log, Tokens: apiTokens(db)})
	if err != nil {
		return nil, nil, err
	}
	var lns []net.Listener
	for _, l := range []struct {
		addr, name string
		reject     []byte
	}{{c.GRPC, "otlp-grpc", nil}, {c.HTTP, "otlp-http", netguard.HTTP503}} {
		addr := l.addr
		if addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			srv.Close()
			return nil, nil, fmt.Errorf("otlp: listen on %s: %w", addr, err)
		}
		// Each port has its own connection budget; a refused gRPC client sees a close (it expects HTTP/2).
		lns = append(lns, guard.wrap(ln, l.name, l.reject))
		log.Info("OTLP receiver serving", "addr", ln.Addr().String())
	}
	if len(lns) == 0 {
		srv.Close()
		return none, nil, nil
	}
	done := make(chan error, 1)
	fail := make(chan error, 1)
	go func() {
		err := srv.Serve(ctx, lns...)
		if err != nil && ctx.Err() == nil {
			fail <- err
		}
		done <- err
	}()
	return func() error { return <-done }, fail, nil
}

func days(n int) time.Duration {
	if n <= 0 {
		return time.Nanosecond // 0 days: keep nothing (detritus' ttl 0 wipes everything)
	}
	return time.Duration(n) * 24 * time.Hour
}

// apiTokens is the store of detritus tokens created through the API, when the backend keeps them. The main API
// and the OTLP receiver get the same otlp.TokenStore for one database, so a token revoked through the API is
// refused by this process's receiver at once.
func apiTokens(db lodestone.Store) lodestone.OTLPTokenStore {
	t, ok := db.(lodestone.OTLPTokenStore)
	if !ok {
		return nil
	}
	shared, _ := sharedTokenStores.LoadOrStore(db, otlp.NewTokenStore(t))
	return shared.(*otlp.TokenStore)
}

var sharedTokenStores sync.Map // lodestone.Store -> *otlp.TokenStore
