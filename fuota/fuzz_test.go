package fuota_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzRequests sends arbitrary paths, queries and CSV bodies through the handler: every answer must be one of
// the contract's statuses (or 405/413, 403 for what the FUOTA login may not change, 409 for a name it may not
// take), never a 500 or a panic.
func FuzzRequests(f *testing.F) {
	e := newEnv(f, 1<<16)
	e.req("PUT", "/files/fw.bin", []byte("firmware"), true)
	e.req("PUT", "/devices/d", []byte(`"d","1","fw.bin"`), true)
	h := e.srv.Config.Handler
	f.Add("PUT", "/devices/d", "", `"d","1","fw.bin"`)
	f.Add("GET", "/devices/d", "app_ver=1", "")
	f.Add("GET", "/files/fw.bin", "", "")
	f.Add("PUT", "/files/a/b", "", "x")
	f.Add("DELETE", "/devices/%22", "a=b;c", "")
	f.Fuzz(func(t *testing.T, method, path, query, body string) {
		if len(path) == 0 || path[0] != '/' {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "https://h"+path, bytes.NewReader([]byte(body)))
		if err != nil {
			return
		}
		req.URL.RawQuery = query
		req.SetBasicAuth(user, pass)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case 200, 204, 206, 400, 403, 404, 405, 409, 413, 416:
		default:
			t.Fatalf("%s %s?%s %q: %d %s", method, path, query, body, w.Code, w.Body.String())
		}
	})
}
