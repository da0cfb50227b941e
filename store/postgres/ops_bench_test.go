package postgres_test

import (
	"testing"

	"github.com/lodestone-fleet/lodestone/store/storetest"
)

// go test ./store/postgres -run '^$' -bench 'FleetCounts|Purge' -benchtime 3x
func BenchmarkFleetCounts(b *testing.B) { storetest.BenchFleetCounts(b, MustOpenDB(b), 50_000) }
func BenchmarkPurge(b *testing.B)       { storetest.BenchPurge(b, MustOpenDB(b), 50_000, 5000) }

func BenchmarkAuditedWrite(b *testing.B) { storetest.BenchAuditedWrite(b, MustOpenDB(b), 10_000) }
