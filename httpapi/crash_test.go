package httpapi_test

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/chunk"
	"github.com/lodestone-fleet/lodestone/crash"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
	"github.com/lodestone-fleet/lodestone/symbol"
)

// crashEnv is the real server with symbolication workers, over a given store and a disk blob store.
type crashEnv struct {
	*env
	store lodestone.Store
}

func newCrashEnv(t *testing.T, store lodestone.Store) *crashEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	blobs, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	admin, _, err := httpapi.NewBasicAuth(ctx, store, "admin", adminPass)
	if err != nil {
		t.Fatal(err)
	}
	sym := crash.New(crash.Config{PollInterval: 50 * time.Millisecond}, store, blobs, nil, log)
	done := make(chan struct{})
	go func() { sym.Run(ctx); close(done) }()
	w := ingest.NewWriter(crash.NotifyingWriter{TelemetryWriter: store, S: sym}, ingest.WriterConfig{}, log)
	svc := ingest.NewService(w, ingest.Config{}, log)
	api := httpapi.New(httpapi.Config{}, httpapi.Deps{Ingest: svc, Devices: store, Telemetry: store, Auth: admin,
		Logger: log, Blobs: blobs, ELFs: store, Crashes: store, Symbols: sym})
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(func() {
		srv.Close()
		w.Close()
		cancel()
		receive(t, done, time.Minute, "the symbolicator's stop")
		store.Close()
	})
	return &crashEnv{env: &env{t: t, srv: srv}, store: store}
}

// bothStores runs fn against SQLite and PostgreSQL.
func bothStores(t *testing.T, fn func(t *testing.T, e *crashEnv)) {
	t.Run("sqlite", func(t *testing.T) {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		fn(t, newCrashEnv(t, db))
	})
	t.Run("postgres", func(t *testing.T) {
		db, err := postgres.Open(context.Background(), pgtest.URL(t), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		fn(t, newCrashEnv(t, db))
	})
}

// do sends a request as the admin and decodes the JSON answer.
func (e *crashEnv) do(method, path string, body []byte, out any, hdr ...string) int {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	req.SetBasicAuth("admin", adminPass)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: %d %v in %q", method, path, resp.StatusCode, err, raw)
		}
	}
	return resp.StatusCode
}

// testFault builds a precise bus error in the O2 firmware: the PC in write_register where store_word is inlined,
// LR in its caller process_batch.
func testFault(t *testing.T, path string) chunk.Fault {
	t.Helper()
	ix, err := symbol.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.Symbols()
	addr := map[string]uint32{}
	for _, s := range syms {
		addr[s.Name] = uint32(s.Value &^ 1)
	}
	pc := uint32(0)
	for a := addr["write_register"]; a < addr["write_register"]+32; a += 2 {
		if fr := ix.Resolve(uint64(a)); fr[0].Function == "store_word" {
			pc = a
			break
		}
	}
	if pc == 0 {
		t.Fatal("no store_word inlined in write_register")
	}
	return chunk.Fault{Type: 2, PC: pc, LR: (addr["process_batch"] + 8) | 1, SP: 0x20001f00, XPSR: 0x21000000,
		CFSR: 0x8200, BFAR: 0x40100000}
}

func session(t *testing.T, device, version string, build uint64, f chunk.Fault) []byte {
	t.Helper()
	b := deviceInfo(t, device, version, build)
	return append(b, chunk.Chunk{Type: chunk.TypeFaultRecord, Flags: chunk.FlagLast,
		Payload: f.AppendPayload(nil)}.Encode()...)
}

type faultsResp struct {
	Faults []struct {
		ID           int64                      `json:"id"`
		Symbol       *string                    `json:"symbol"`
		SymbolState  string                     `json:"symbol_state"`
		CrashGroupID *int64                     `json:"crash_group_id"`
		Backtrace    []lodestone.BacktraceFrame `json:"backtrace"`
		Causes       []lodestone.FaultCause     `json:"causes"`
		Firmware     string                     `json:"firmware_version"`
	} `json:"faults"`
}

// waitFaults polls GET /faults until cond holds: symbolication runs in the background.
func (e *crashEnv) waitFaults(cond func(faultsResp) bool) faultsResp {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var r faultsResp
		e.do("GET", "/faults", nil, &r)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("faults never reached the expected state: %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func uploadELF(t *testing.T, e *crashEnv, path, version string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		OK  bool           `json:"ok"`
		ELF map[string]any `json:"elf"`
	}
	if s := e.do("POST", "/ingest/elf", data, &r, "X-Firmware-Version", version); s != 200 || !r.OK {
		t.Fatalf("upload %s: %d %+v", path, s, r)
	}
	return r.ELF
}

func checkSymbolicated(t *testing.T, r faultsResp) {
	t.Helper()
	f := r.Faults[0]
	bt := f.Backtrace
	if len(bt) < 2 || bt[0].Method != "pc" || len(bt[0].Frames) != 2 || bt[0].Frames[0].Function != "store_word" ||
		!bt[0].Frames[0].Inlined || bt[0].Frames[1].Function != "write_register" ||
		!strings.HasSuffix(bt[0].Frames[1].File, "app.c") || bt[0].Frames[1].Line == 0 ||
		bt[1].Method != "lr" || bt[1].Frames[len(bt[1].Frames)-1].Function != "process_batch" {
		t.Fatalf("backtrace: %+v", bt)
	}
	if len(f.Causes) != 1 || f.Causes[0].Name != "PRECISERR" || !f.Causes[0].AddressValid ||
		f.Causes[0].Address != 0x40100000 || !strings.Contains(f.Causes[0].Text, "0x40100000") {
		t.Fatalf("causes: %+v", f.Causes)
	}
	if f.Symbol == nil || !strings.HasPrefix(*f.Symbol, "store_word at ") || f.CrashGroupID == nil {
		t.Fatalf("symbol %v group %v", f.Symbol, f.CrashGroupID)
	}
}

const (
	elfO2 = "../symbol/testdata/firmware-O2.elf"
	elfO0 = "../symbol/testdata/firmware-O0.elf"
)

// An ELF, then a fault from a device running it: the fault shows a symbolicated backtrace with its inline frame
// and decoded cause, and is filed into a crash issue. The device reports the O2 build's id; a newer ELF of the
// same version (the O0 build) must not be used.
func TestCrashELFThenFault(t *testing.T) {
	bothStores(t, func(t *testing.T, e *crashEnv) {
		ix, err := symbol.Open(elfO2)
		if err != nil {
			t.Fatal(err)
		}
		got := uploadELF(t, e, elfO2, "1.4.2")
		if got["build_id"] != ix.BuildIDHex() || got["version"] != "1.4.2" {
			t.Fatalf("uploaded ELF: %+v", got)
		}
		uploadELF(t, e, elfO0, "1.4.2") // newer, same version, other build
		if s, _, raw := e.post(nil, session(t, "dev-a", "1.4.2", ix.BuildID64(), testFault(t, elfO2))); s != 200 {
			t.Fatalf("ingest: %d %s", s, raw)
		}
		r := e.waitFaults(func(r faultsResp) bool { return len(r.Faults) == 1 && r.Faults[0].SymbolState == "done" })
		checkSymbolicated(t, r)

		var list struct {
			Groups []map[string]any `json:"crash_groups"`
			Total  int              `json:"total"`
		}
		if s := e.do("GET", "/crashes", nil, &list); s != 200 || list.Total != 1 || len(list.Groups) != 1 {
			t.Fatalf("crashes: %d %+v", s, list)
		}
		g := list.Groups[0]
		for _, k := range []string{"id", "signature_hash", "pc", "fault_type", "first_seen", "last_seen",
			"occurrence_count", "affected_device_count", "title"} {
			if _, ok := g[k]; !ok {
				t.Fatalf("crash group lacks ferrite's %q: %+v", k, g)
			}
		}
		if g["occurrence_count"] != 1.0 || g["state"] != "open" ||
			!strings.Contains(g["title"].(string), "write_register") {
			t.Fatalf("group: %+v", g)
		}
		var one struct {
			Group       map[string]any   `json:"group"`
			Occurrences []map[string]any `json:"occurrences"`
		}
		if s := e.do("GET", "/crashes/"+jsonID(g["id"]), nil, &one); s != 200 || len(one.Occurrences) != 1 {
			t.Fatalf("crash: %d %+v", s, one)
		}
		if s := e.do("GET", "/crashes/99999", nil, nil); s != 404 {
			t.Fatalf("missing crash: %d", s)
		}
	})
}

func jsonID(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// The fault first, its ELF later: the fault waits without symbols, then the upload fills them in.
func TestCrashFaultThenELF(t *testing.T) {
	bothStores(t, func(t *testing.T, e *crashEnv) {
		if s, _, raw := e.post(nil, session(t, "dev-b", "7.0.0", 0, testFault(t, elfO2))); s != 200 {
			t.Fatalf("ingest: %d %s", s, raw)
		}
		r := e.waitFaults(func(r faultsResp) bool { return len(r.Faults) == 1 && r.Faults[0].SymbolState == "no_elf" })
		if f := r.Faults[0]; f.Symbol != nil || len(f.Backtrace) != 0 || len(f.Causes) != 1 || f.CrashGroupID == nil ||
			f.Firmware != "7.0.0" {
			t.Fatalf("fault without ELF: %+v", f)
		}
		uploadELF(t, e, elfO2, "7.0.0")
		r = e.waitFaults(func(r faultsResp) bool { return len(r.Faults) == 1 && r.Faults[0].SymbolState == "done" })
		checkSymbolicated(t, r)
		var list struct {
			Groups []map[string]any `json:"crash_groups"`
			Total  int              `json:"total"`
		}
		// The fault left its by-PC group for the symbolicated one.
		if e.do("GET", "/crashes", nil, &list); list.Total != 1 || list.Groups[0]["occurrence_count"] != 1.0 ||
			jsonID(list.Groups[0]["id"]) != jsonID(*r.Faults[0].CrashGroupID) {
			t.Fatalf("crashes after late symbols: %+v", list)
		}
	})
}

// Triage through the API: resolve, regression on newer firmware, mute, merge, and the checks on bad input.
func TestCrashTriage(t *testing.T) {
	bothStores(t, func(t *testing.T, e *crashEnv) {
		uploadELF(t, e, elfO2, "1.0.0")
		e.post(nil, session(t, "dev-c", "1.0.0", 0, testFault(t, elfO2)))
		r := e.waitFaults(func(r faultsResp) bool { return len(r.Faults) == 1 && r.Faults[0].SymbolState == "done" })
		id := jsonID(*r.Faults[0].CrashGroupID)
		var g struct {
			Group map[string]any `json:"group"`
			Error string         `json:"error"`
		}
		if s := e.do("PATCH", "/crashes/"+id, []byte(`{"state":"resolved"}`), &g); s != 200 ||
			g.Group["state"] != "resolved" || g.Group["resolved_version"] != "1.0.0" {
			t.Fatalf("resolve: %d %+v", s, g)
		}
		for body, want := range map[string]int{`{"state":"gone"}`: 400, `{}`: 400, `nope`: 400} {
			if s := e.do("PATCH", "/crashes/"+id, []byte(body), &g); s != want || g.Error == "" {
				t.Fatalf("PATCH %s: %d %+v", body, s, g)
			}
		}
		// Newer firmware, same code (the same ELF uploaded under 1.1.0): a regression re-opens the issue.
		uploadELF(t, e, elfO2, "1.1.0")
		e.post(nil, session(t, "dev-c", "1.1.0", 0, testFault(t, elfO2)))
		e.waitFaults(func(r faultsResp) bool { return len(r.Faults) == 2 && r.Faults[0].SymbolState == "done" })
		if e.do("GET", "/crashes/"+id, nil, &g); g.Group["state"] != "open" || g.Group["regression"] != true ||
			g.Group["occurrence_count"] != 2.0 {
			t.Fatalf("after regression: %+v", g.Group)
		}
		// A second issue (no ELF for 9.9.9: filed by PC), merged into the first.
		e.post(nil, session(t, "dev-d", "9.9.9", 0, testFault(t, elfO2)))
		r = e.waitFaults(func(r faultsResp) bool { return len(r.Faults) == 3 && r.Faults[0].SymbolState == "no_elf" })
		other := jsonID(*r.Faults[0].CrashGroupID)
		if s := e.do("POST", "/crashes/"+other+"/merge", []byte(`{"into":`+id+`}`), &g); s != 200 ||
			g.Group["occurrence_count"] != 3.0 || g.Group["affected_device_count"] != 2.0 {
			t.Fatalf("merge: %d %+v", s, g)
		}
		if s := e.do("POST", "/crashes/"+id+"/merge", []byte(`{"into":`+id+`}`), &g); s != 400 {
			t.Fatalf("self merge: %d", s)
		}
		if s := e.do("POST", "/crashes/"+other+"/merge", []byte(`{"into":`+id+`}`), &g); s != 409 {
			t.Fatalf("merge of a merged group: %d", s)
		}
		if s := e.do("PATCH", "/crashes/abc", []byte(`{"state":"muted"}`), &g); s != 400 {
			t.Fatalf("bad id: %d", s)
		}
	})
}

// ELF uploads: list, get, delete, refusals.
func TestELFRoutes(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := newCrashEnv(t, db)
	var er struct {
		Error string `json:"error"`
	}
	if s := e.do("POST", "/ingest/elf", []byte("not an elf at all"), &er); s != 400 || er.Error == "" {
		t.Fatalf("garbage upload: %d %+v", s, er)
	}
	if s := e.do("POST", "/ingest/elf", nil, &er); s != 400 {
		t.Fatalf("empty upload: %d", s)
	}
	big := bytes.NewReader(make([]byte, httpapi.MaxELFBytes+1))
	req, _ := http.NewRequest("POST", e.srv.URL+"/ingest/elf", big)
	req.SetBasicAuth("admin", adminPass)
	if resp, err := e.srv.Client().Do(req); err != nil || resp.StatusCode != 413 {
		t.Fatalf("oversized upload: %v %v", err, resp)
	}
	// Without a version header the version the firmware embeds is used.
	data, _ := os.ReadFile(elfO2)
	var up struct {
		ELF map[string]any `json:"elf"`
	}
	if s := e.do("POST", "/ingest/elf", data, &up); s != 200 || up.ELF["version"] != "1.4.2" {
		t.Fatalf("upload without version: %d %+v", s, up)
	}
	id := jsonID(up.ELF["id"])
	var list struct {
		ELFs []map[string]any `json:"elfs"`
	}
	if s := e.do("GET", "/elfs", nil, &list); s != 200 || len(list.ELFs) != 1 {
		t.Fatalf("list: %d %+v", s, list)
	}
	if s := e.do("GET", "/elfs/"+id, nil, nil); s != 200 {
		t.Fatalf("get: %d", s)
	}
	if s := e.do("DELETE", "/elfs/"+id, nil, nil); s != 200 {
		t.Fatalf("delete: %d", s)
	}
	if s := e.do("GET", "/elfs/"+id, nil, nil); s != 404 {
		t.Fatalf("get deleted: %d", s)
	}
	// Anonymous callers are refused.
	resp, err := http.Post(e.srv.URL+"/ingest/elf", "application/octet-stream", bytes.NewReader(data))
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("anonymous upload: %v %v", err, resp)
	}
}
