// Package driverbench measures SQLite drivers on lodestone's write and read paths. Each driver is selected by a
// build tag because two of them register the same database/sql name:
//
//	go test -tags mattn   -bench . -count 3
//	go test -tags modernc -bench . -count 3
//	go test -tags ncruces -bench . -count 3
package driverbench
