package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

// The real SWUpdate client, in suricatta's hawkBit mode, against a running lodestone: Debian's swupdate package.
// Skipped when the binary is absent, unless LODESTONE_REQUIRE_SWUPDATE=1 (CI sets it).

func needSWUpdate(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"swupdate", "openssl"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("LODESTONE_REQUIRE_SWUPDATE") == "1" {
				t.Fatalf("%s is required (LODESTONE_REQUIRE_SWUPDATE=1): %v", bin, err)
			}
			t.Skipf("%s not installed", bin)
		}
	}
}

func run(t *testing.T, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// swuSigner is a signing certificate made for the test. Debian builds SWUpdate with CMS signatures, so the
// sw-description is signed with openssl cms and -k names the certificate.
type swuSigner struct{ dir, cert, key string }

func newSWUSigner(t *testing.T) swuSigner {
	dir := t.TempDir()
	s := swuSigner{dir: dir, cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
	run(t, dir, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", s.key, "-out", s.cert,
		"-days", "2", "-subj", "/CN=lodestone-test", "-addext", "keyUsage=digitalSignature",
		"-addext", "extendedKeyUsage=emailProtection")
	return s
}

// image builds a signed .swu: a cpio (newc) archive of sw-description, its signature and one file that the
// rawfile handler writes to dest.
func (s swuSigner) image(t *testing.T, version, dest string, payload []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	sum := sha256.Sum256(payload)
	desc := fmt.Sprintf(`software =
{
	version = "%s";
	description = "lodestone DDI test";
	hardware-compatibility: [ "1.0" ];
	files: (
		{
			filename = "payload.txt";
			path = "%s";
			sha256 = "%s";
		}
	);
}
`, version, dest, hex.EncodeToString(sum[:]))
	if err := os.WriteFile(filepath.Join(dir, "sw-description"), []byte(desc), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, dir, "openssl", "cms", "-sign", "-in", "sw-description", "-out", "sw-description.sig", "-signer",
		s.cert, "-inkey", s.key, "-outform", "DER", "-nosmimecap", "-binary")
	sig, err := os.ReadFile(filepath.Join(dir, "sw-description.sig"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	ino := 1
	// sw-description must come first, its signature next.
	for _, f := range []struct {
		name string
		data []byte
	}{{"sw-description", []byte(desc)}, {"sw-description.sig", sig}, {"payload.txt", payload},
		{"TRAILER!!!", nil}} {
		mode := 0o100644
		if f.data == nil {
			mode = 0
		}
		fmt.Fprintf(&b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%s\x00", ino, mode, 0, 0, 1, 0,
			len(f.data), 0, 0, 0, 0, len(f.name)+1, 0, f.name)
		ino++
		pad(&b)
		b.Write(f.data)
		pad(&b)
	}
	for b.Len()%512 != 0 {
		b.WriteByte(0)
	}
	return b.Bytes()
}

func pad(b *bytes.Buffer) {
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
}

// swupdate runs the real client in suricatta hawkBit mode as controller device, with its target token, in its
// own process group, killed (with its children) when the test ends. extra are more suricatta arguments.
func (e *ddiEnv) swupdate(t *testing.T, s swuSigner, device, token string, extra ...string) *exec.Cmd {
	t.Helper()
	work := t.TempDir()
	tmp := filepath.Join(work, "tmp") // SWUpdate's control sockets live in TMPDIR: one set per process
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	suricatta := strings.Join(append([]string{"-t", "DEFAULT", "-u", e.srv.URL, "-i", device, "-k", token,
		"-p", "1", "-r", "2", "-w", "1"}, extra...), " ")
	cmd := exec.Command("swupdate", "-v", "-H", "test:1.0", "-k", s.cert, "-u", suricatta)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	logf, err := os.Create(filepath.Join(work, "swupdate.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		logf.Close()
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() || os.Getenv("LODESTONE_SWUPDATE_LOG") != "" {
			out, _ := os.ReadFile(logf.Name())
			if len(out) > 8000 && os.Getenv("LODESTONE_SWUPDATE_LOG") == "" {
				out = out[len(out)-8000:]
			}
			t.Logf("swupdate log (%s, last part):\n%s", device, out)
		}
	})
	return cmd
}

// stopSWUpdate kills a client and its children now (a reboot, to the server).
func stopSWUpdate(cmd *exec.Cmd) {
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
}

// waitAction waits until the controller's action satisfies ok.
func (e *ddiEnv) waitAction(t *testing.T, device string, id int64, what string,
	ok func(*lodestone.DDIAction) bool) *lodestone.DDIAction {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		a, err := e.store.FindDDIAction(context.Background(), device, id)
		if err == nil && ok(a) {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s within the deadline; action %+v %v", device, what, a, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSWUpdateInstallsFromLodestone(t *testing.T) {
	needSWUpdate(t)
	ddiBackends(t, testSWUpdateInstallsFromLodestone)
}

func testSWUpdateInstallsFromLodestone(t *testing.T, pg bool) {
	e := newDDIEnvOn(t, httpapi.DDIConfig{PollInterval: time.Second}, pg)
	signer := newSWUSigner(t)
	ctx := context.Background()

	// Success: a plain target. SWUpdate installs the file, reports the chunks installed, and after its restart
	// (the "reboot", told with -c 2 that the update works) reports closed/success.
	out := filepath.Join(t.TempDir(), "installed.txt")
	fw := e.upload(signer.image(t, "2.0.0", out, []byte("hello from lodestone\n")), "2.0.0")
	key := e.deviceKey("swu-ok")
	e.target("swu-ok", fw)
	offer, _, err := e.store.SyncDDIAction(ctx, "swu-ok", time.Now())
	if err != nil || offer == nil {
		t.Fatalf("no action for the target: %v", err)
	}
	first := e.swupdate(t, signer, "swu-ok", key)
	// Without a bootloader to keep its state, SWUpdate may install again on its next poll until it is restarted:
	// wait for the file, and for its progress report, not for one particular message.
	waitUntil(t, 90*time.Second, "the installed file", func() bool {
		got, err := os.ReadFile(out)
		return err == nil && string(got) == "hello from lodestone\n"
	})
	e.waitAction(t, "swu-ok", offer.ID, "progress report", func(a *lodestone.DDIAction) bool {
		return a.RetrievedAt != nil && a.Execution == "proceeding"
	})
	stopSWUpdate(first)
	e.swupdate(t, signer, "swu-ok", key, "-c", "2")
	a := e.waitAction(t, "swu-ok", offer.ID, "closed", func(a *lodestone.DDIAction) bool {
		return a.Status == lodestone.DDIClosed
	})
	if a.Result != "success" || a.Execution != "closed" {
		t.Fatalf("recorded %+v", a)
	}
	// The feedback closes the action, then reports the install to the OTA service, which sets the device's
	// firmware: a read right after the action closed can come between the two (seen under -race).
	waitUntil(t, 10*time.Second, "the device's firmware version", func() bool {
		dev := e.do("GET", "/devices/swu-ok", root, nil).must(t, 200)
		return dev.body["device"].(map[string]any)["firmware_version"] == "x"
	})

	// Failure: a campaign whose image cannot be installed (its file goes to a directory that does not exist).
	// SWUpdate reports closed/failure, which fails the device in the campaign and halts it by its threshold.
	bad := e.upload(signer.image(t, "3.0.0", filepath.Join(t.TempDir(), "missing", "x.txt"), []byte("x")), "3.0.0")
	badKey := e.deviceKey("swu-bad")
	camp := e.do("POST", "/ota/campaigns", root, map[string]any{"name": "bad", "firmware_id": bad,
		"device_ids": []string{"swu-bad", "swu-later"}, "waves": []int{50, 100}, "failure_threshold": 0}).
		must(t, 201)
	path := fmt.Sprintf("/ota/campaigns/%d", int(camp.body["campaign"].(map[string]any)["id"].(float64)))
	e.do("POST", path+"/activate", root, nil).must(t, 200)
	offer, _, err = e.store.SyncDDIAction(ctx, "swu-bad", time.Now())
	if err != nil || offer == nil {
		t.Fatalf("no action for the campaign: %v", err)
	}
	e.swupdate(t, signer, "swu-bad", badKey)
	a = e.waitAction(t, "swu-bad", offer.ID, "closed", func(a *lodestone.DDIAction) bool {
		return a.Status == lodestone.DDIClosed
	})
	if a.Result != "failure" {
		t.Fatalf("recorded %+v", a)
	}
	e.tick()
	if st, why, counts := e.campaignState(path); st != "halted" || counts["failed"] != float64(1) ||
		!strings.Contains(why, "1 of 1 offered devices failed") {
		t.Fatalf("campaign %s %q %v", st, why, counts)
	}
}
