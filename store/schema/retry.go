package schema

import "errors"

// Attempts bounds how often a store runs a PostgreSQL transaction that lost a race with another one (Retryable):
// the first run and three more.
const Attempts = 4

// Retryable reports whether a transaction failed only because it raced another transaction, so running it again
// can succeed: PostgreSQL's deadlock_detected or serialization_failure. It reads the SQLSTATE that pgx's errors
// carry, so the stores over database/sql need no driver import.
func Retryable(err error) bool {
	var st interface{ SQLState() string }
	return errors.As(err, &st) && (st.SQLState() == "40P01" || st.SQLState() == "40001")
}
