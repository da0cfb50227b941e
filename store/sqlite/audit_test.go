package sqlite_test

import (
	"database/sql"
	"testing"

	"github.com/lodestone-fleet/lodestone/store/storetest"
)

// TestAuditTamper edits and deletes audit rows through a connection of its own, as someone with the file would.
func TestAuditTamper(t *testing.T) {
	db := MustOpenDB(t)
	raw, err := sql.Open("sqlite3", "file:"+db.Path()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	storetest.AuditTamper(t, db, func(q string) error { _, err := raw.Exec(q); return err })
}

// TestAuditFailureRollsBack plants a row where the next entry goes: the change that cannot be audited fails.
func TestAuditFailureRollsBack(t *testing.T) {
	db := MustOpenDB(t)
	raw, err := sql.Open("sqlite3", "file:"+db.Path()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	storetest.AuditFailureRollsBack(t, db, func(q string) error { _, err := raw.Exec(q); return err })
}
