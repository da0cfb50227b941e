// Package durable holds the file system step that makes a rename survive power loss.
package durable

import (
	"fmt"
	"os"
)

// SyncDir fsyncs the directory dir: a file renamed or created in it is durable only once its directory entry is.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
