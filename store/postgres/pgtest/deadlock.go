package pgtest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
)

// ProbeUpdate is the statement a RetryRunner's body runs through its update function, with a probe row's id.
const ProbeUpdate = `UPDATE deadlock_probe SET n = n + 1 WHERE id = $1`

// RetryRunner runs body in one transaction of the code under test, as many times as that code retries it;
// update runs ProbeUpdate in that transaction.
type RetryRunner func(what string, body func(update func(id int) error) error) error

// CheckDeadlockRetry makes a real deadlock: two transactions run by run, in the schema of url, lock two rows in
// opposite orders once both hold their first. PostgreSQL aborts one of them; the test fails unless run ran that
// one again and both ended without error, each row counting both commits.
func CheckDeadlockRetry(t *testing.T, url string, run RetryRunner) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE deadlock_probe (id int PRIMARY KEY, n int NOT NULL);
		INSERT INTO deadlock_probe VALUES (1, 0), (2, 0)`); err != nil {
		t.Fatal(err)
	}
	var bothHold sync.WaitGroup
	bothHold.Add(2)
	var runs [2]atomic.Int32
	lockTwo := func(i, first, second int) func(update func(int) error) error {
		return func(update func(int) error) error {
			attempt := runs[i].Add(1)
			if err := update(first); err != nil {
				return err
			}
			if attempt == 1 {
				bothHold.Done()
				bothHold.Wait()
			}
			return update(second)
		}
	}
	var wg sync.WaitGroup
	var errs [2]error
	wg.Go(func() { errs[0] = run("probe one", lockTwo(0, 1, 2)) })
	wg.Go(func() { errs[1] = run("probe two", lockTwo(1, 2, 1)) })
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("errors: %v, %v", errs[0], errs[1])
	}
	if total := runs[0].Load() + runs[1].Load(); total != 3 {
		t.Fatalf("%d runs in all, want 3: one of the two ran again after the deadlock", total)
	}
	var a, b int
	if err := conn.QueryRow(ctx, `SELECT (SELECT n FROM deadlock_probe WHERE id = 1),
		(SELECT n FROM deadlock_probe WHERE id = 2)`).Scan(&a, &b); err != nil || a != 2 || b != 2 {
		t.Fatalf("counts %d, %d (%v), want 2 and 2: each transaction committed once", a, b, err)
	}
}
