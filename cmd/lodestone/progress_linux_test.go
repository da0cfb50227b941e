package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// On a terminal the bar is drawn, in place, and ends its line when done.
func TestProgressBarDrawsOnTerminal(t *testing.T) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pty number: %v", err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pty: %v", err)
	}
	defer tty.Close()
	got := make(chan string, 1)
	go func() {
		var all []byte
		buf := make([]byte, 4096)
		for !strings.Contains(string(all), "\n") {
			k, err := master.Read(buf)
			if err != nil {
				break
			}
			all = append(all, buf[:k]...)
		}
		got <- string(all)
	}()
	p := newProgressBar(tty, "backup", 2048, true)
	p.Set(1024)
	p.Done(2048)
	select {
	case out := <-got:
		if !strings.Contains(out, "backup") || !strings.Contains(out, "100%") || !strings.Contains(out, "\r") {
			t.Fatalf("terminal got %q", out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing drawn on the terminal")
	}
}
