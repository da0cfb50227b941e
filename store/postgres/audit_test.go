package postgres_test

import (
	"context"
	"testing"

	"github.com/lodestone-fleet/lodestone/store/storetest"
)

// TestAuditTamper edits and deletes audit rows with plain SQL, as someone with database access would.
func TestAuditTamper(t *testing.T) {
	db := MustOpenDB(t)
	storetest.AuditTamper(t, db, func(q string) error { _, err := db.Pool().Exec(context.Background(), q); return err })
}
