package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// TestExplainStabilityQueries prints the plans of the stability report's statements and fails when one scans a
// table instead of searching an index by time: the fleet report reads the range of stability_hours by its
// primary key, a group's or tag's report probes its member list, the crash issues read faults by time. It runs
// on a fresh database, or on a filled one named by LODESTONE_EXPLAIN_SQLITE (BenchmarkStabilitySQLite's cache).
func TestExplainStabilityQueries(t *testing.T) {
	ctx := context.Background()
	path := os.Getenv("LODESTONE_EXPLAIN_SQLITE")
	if path == "" {
		path = filepath.Join(t.TempDir(), "x.db")
		db, err := Open(ctx, path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	db, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	end := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, q := range []lodestone.StabilityQuery{
		{From: end.Add(-30 * 24 * time.Hour), To: end},
		{From: end.Add(-30 * 24 * time.Hour), To: end, Group: "eu-west"},
		{From: end.Add(-30 * 24 * time.Hour), To: end, Tag: "pilot", Versions: []string{"2.0.0"}},
	} {
		for _, st := range db.StabilityStatements(q) {
			rows, err := db.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+st.SQL, st.Args...)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			rows.Close()
			text := strings.Join(plan, "\n")
			t.Logf("%s (group %q, tag %q):\n%s", st.Name, q.Group, q.Tag, text)
			want := map[string]string{"totals": "SEARCH stability_hours USING PRIMARY KEY (hour>? AND hour<?)",
				"reboot reasons": "SEARCH stability_reboots USING PRIMARY KEY (hour>? AND hour<?)",
				"crash issues":   "USING INDEX faults_"}[st.Name]
			if !strings.Contains(text, want) || strings.Contains(text, "SCAN stability") || strings.Contains(text, "SCAN f\n") {
				t.Errorf("%s: plan lacks %q or scans:\n%s", st.Name, want, text)
			}
		}
	}
}
