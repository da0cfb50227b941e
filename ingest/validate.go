package ingest

import (
	"fmt"
	"unicode/utf8"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
)

// Client data is checked here, once, as it leaves the decoder, with one rule for every store: anything that
// passes can be stored by SQLite and PostgreSQL alike, so a store error is never a property of the data, and 503
// keeps meaning "retry later will work". A value that fails is reported as that chunk's error and the rest of the
// body is stored.

// MaxText is the longest device-supplied text ingest stores, in bytes. A length byte carries at most 255 bytes,
// which ferrite's lossy UTF-8 decoding can triple; both stores index far longer text (PostgreSQL's btree limit is
// about 2.7 KB).
const MaxText = 3 * 255

// checkText applies the text rule to a device_id, firmware_version or metric key: valid UTF-8 (which ferrite's
// lossy decoding guarantees for chunk strings), at most MaxText bytes, and no control characters. NUL is what
// PostgreSQL cannot store at all; the other C0 controls and DEL are refused with it because ids and keys end up in
// paths, logs and terminal output, where a newline or escape sequence is an injection.
func checkText(what, s string, emptyOK bool) error {
	switch {
	case s == "" && !emptyOK:
		return fmt.Errorf("%s is empty", what)
	case len(s) > MaxText:
		return fmt.Errorf("%s is %d bytes, at most %d allowed", what, len(s), MaxText)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	for i := 0; i < len(s); i++ {
		// Every byte of a multi-byte UTF-8 character is >= 0x80, so a byte test finds exactly the controls.
		if c := s[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("%s holds control character 0x%02X at byte %d", what, c, i)
		}
	}
	return nil
}

// checkDeviceInfo validates a decoded DeviceInfo. idErr is set when the device cannot be named at all; infoErr
// when only what it says it runs is unusable, so its other chunks still belong to it.
func checkDeviceInfo(di chunk.DeviceInfo) (idErr, infoErr error) {
	if err := checkText("device_id", di.DeviceID, false); err != nil {
		return err, nil
	}
	return nil, checkText("firmware_version", di.FirmwareVersion, true)
}

// checkMetricKey validates a metric key. An empty key is refused: it could never be selected again (an empty
// key filter means every key).
func checkMetricKey(key string) error { return checkText("key", key, false) }

// checkTraceFragment refuses fragments that carry nothing or can never be part of an assembled trace: the store
// keeps unassembled fragments, so one past the trace size limit would be kept forever for nothing.
func checkTraceFragment(t chunk.TraceFragment) error {
	const limit = uint64(lodestone.MaxTraceSize)
	switch {
	case len(t.Data) == 0:
		return fmt.Errorf("trace fragment at offset %d carries no data, only its 8-byte offset", t.Offset)
	case t.Offset > limit || uint64(len(t.Data)) > limit-t.Offset:
		return fmt.Errorf("trace fragment at offset %d with %d bytes ends past the %d-byte trace limit", t.Offset,
			len(t.Data), limit)
	}
	return nil
}
