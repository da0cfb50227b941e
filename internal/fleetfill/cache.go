package fleetfill

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/lodestone-fleet/lodestone/store/schema"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// version changes when Fill writes something different for the same Config. 2: points sealed (CachedSQLite).
const version = 2

// CachedSQLite returns the path of a SQLite database filled with c and sealed up to its last 30 minutes, under os.UserCacheDir()/lodestone-bench. The
// file is named by a hash of the SQLite migrations, c and the fill's version, so a schema change makes a new one;
// the first call fills it (minutes), later ones return at once. Open it read-only, or accept that it changes.
func CachedSQLite(ctx context.Context, c Config, progress func(points int)) (string, error) {
	path, err := CachePath(c)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("fleetfill: cache directory: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	// Filled under another name and renamed once whole, so an interrupted fill is never taken for a cache.
	tmp := fmt.Sprintf("%s.filling-%d", path, os.Getpid())
	db, err := sqlite.Open(ctx, tmp, sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		return "", fmt.Errorf("fleetfill: open %s: %w", tmp, err)
	}
	err = Fill(ctx, db, c, progress)
	if err == nil {
		// A server's compactor keeps only the last 15 to 30 minutes as rows (sqlite.DefaultSealAfter); the
		// benchmarks read the fleet as a server holds it.
		_, err = db.SealMetrics(ctx, c.withDefaults().End.Add(-2*sqlite.DefaultSealAfter))
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// Close checkpoints the WAL into the file; a WAL left behind would hold data the renamed file lacks.
		if _, serr := os.Stat(tmp + "-wal"); serr == nil {
			err = fmt.Errorf("fleetfill: %s-wal remains after close", tmp)
		}
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		for _, f := range []string{tmp, tmp + "-wal", tmp + "-shm"} {
			os.Remove(f)
		}
		return "", err
	}
	return path, nil
}

// CachePath is where CachedSQLite keeps the database filled with c, whether it is there yet or not.
func CachePath(c Config) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("fleetfill: cache directory: %w", err)
	}
	key, err := cacheKey(c.withDefaults())
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "lodestone-bench", "fleet-"+key+".db"), nil
}

func cacheKey(c Config) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "fleetfill %d %+v\n", version, c)
	fsys, err := schema.FS(schema.SQLite)
	if err != nil {
		return "", err
	}
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		fmt.Fprintf(h, "%s %d\n", p, len(b))
		h.Write(b)
		return err
	})
	if err != nil {
		return "", errors.Join(errors.New("fleetfill: read migrations"), err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
