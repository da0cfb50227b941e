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

// TestAuditFailureRollsBack plants a row where the next entry goes: the change that cannot be audited fails.
func TestAuditFailureRollsBack(t *testing.T) {
	db := MustOpenDB(t)
	storetest.AuditFailureRollsBack(t, db, func(q string) error {
		_, err := db.Pool().Exec(context.Background(), q)
		return err
	})
}
