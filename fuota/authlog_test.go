package fuota_test

import (
	"net/http"
	"strings"
	"testing"
)

// A refused login is logged at WARN with the user name and address, never the password.
func TestRefusedLoginIsLogged(t *testing.T) {
	e := newEnv(t, 0)
	req, _ := http.NewRequest("GET", e.srv.URL+"/files", nil)
	req.SetBasicAuth("intruder", "guessed-password")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d", resp.StatusCode)
	}
	out := e.logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "fuota authentication failed") ||
		!strings.Contains(out, "intruder") || strings.Contains(out, "guessed-password") {
		t.Fatalf("log:\n%s", out)
	}
}
