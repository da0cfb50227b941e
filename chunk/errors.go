package chunk

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns wraps exactly one of them, so callers branch with errors.Is
// and still get a message with the detail (offsets, lengths, values) for logs and API responses.
var (
	ErrShort      = errors.New("short chunk")         // fewer than MinSize bytes left
	ErrMagic      = errors.New("bad magic")           // first byte is not Magic
	ErrVersion    = errors.New("unsupported version") // version byte is not Version
	ErrType       = errors.New("unknown chunk type")  // chunk_type outside 0x01..0x07
	ErrTruncated  = errors.New("truncated chunk")     // payload_len runs past the end of the input
	ErrCRC        = errors.New("crc mismatch")        // stored CRC differs from the computed one
	ErrPayload    = errors.New("bad payload")         // a payload too short or malformed for its type
	ErrDecrypt    = errors.New("decryption failed")   // too short to hold nonce and tag, or authentication failed
	ErrDecompress = errors.New("decompression failed")
	ErrTrace      = errors.New("bad trace") // trace fragments that do not reassemble
	ErrKey        = errors.New("bad key")   // an encryption key that is not 32 hex characters
)

// payloadError keeps ferrite-server's exact message text ("failed to parse fault payload", which the ingest
// response repeats verbatim) while still matching ErrPayload with errors.Is.
type payloadError struct{ msg string }

func (e *payloadError) Error() string        { return e.msg }
func (e *payloadError) Is(target error) bool { return target == ErrPayload }

func payloadErr(format string, args ...any) error {
	return &payloadError{msg: fmt.Sprintf(format, args...)}
}

// failure is why a frame did not decode at one position, kept as plain values: re-sync fails at many positions
// in a row and only the first of each run becomes an error, so garbage costs no allocation per byte. As an error
// it formats its message only when asked and matches its sentinel with errors.Is.
type failure struct {
	kind error // a sentinel; nil means the frame is good
	a, b int   // details for the message, meaning depends on kind
}

// err returns the failure as an error value; it must only be called when kind is set.
func (f failure) err() error { return f }

// Unwrap returns the sentinel, for errors.Is.
func (f failure) Unwrap() error { return f.kind }

// Error renders the message with the failure's details.
func (f failure) Error() string {
	switch f.kind {
	case ErrShort:
		return fmt.Sprintf("%v: %d bytes, need at least %d", ErrShort, f.a, MinSize)
	case ErrMagic:
		return fmt.Sprintf("%v: 0x%02X, want 0x%02X", ErrMagic, f.a, Magic)
	case ErrVersion:
		return fmt.Sprintf("%v: %d, want %d", ErrVersion, f.a, Version)
	case ErrType:
		return fmt.Sprintf("%v: 0x%02X", ErrType, f.a)
	case ErrTruncated:
		return fmt.Sprintf("%v: payload_len %d needs %d bytes, %d left", ErrTruncated, f.a, HeaderSize+f.a+CRCSize,
			f.b)
	case ErrCRC:
		return fmt.Sprintf("%v: expected 0x%04X (stored), got 0x%04X (computed)", ErrCRC, f.a, f.b)
	case nil:
		return "no error"
	}
	return f.kind.Error()
}
