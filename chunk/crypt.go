package chunk

import (
	"crypto/aes"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/pion/dtls/v3/pkg/crypto/ccm"
)

// The SDK's CCM parameters (spec §1.8): a 13-byte nonce (so L=2), an 8-byte tag, no associated data. The
// encrypted payload is nonce || ciphertext || tag, NonceSize+TagSize = 21 bytes longer than the plaintext.
const (
	NonceSize = 13
	TagSize   = 8
)

// Key is the AES-128 key shared by the server and every device of a fleet.
type Key [16]byte

// ParseKey reads a key written as exactly 32 hex characters, the form of ferrite's CHUNK_ENCRYPTION_KEY, and
// says what is wrong (ErrKey) rather than silently disabling encryption as ferrite does.
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) != 32 {
		return k, fmt.Errorf("%w: want 32 hex characters, got %d", ErrKey, len(s))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return Key{}, fmt.Errorf("%w: want 32 hex characters: %v", ErrKey, err)
	}
	return k, nil
}

// Cipher encrypts and decrypts chunk payloads the way the SDK's EncryptedTransport does. It holds the expanded
// AES key so ingest prepares it once, and it is safe for concurrent use (Seal and Open keep no state).
type Cipher struct {
	aead ccm.CCM
}

// NewCipher prepares AES-128-CCM with the SDK's parameters for key k.
func NewCipher(k Key) (*Cipher, error) {
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	aead, err := ccm.NewCCM(block, TagSize, NonceSize)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	return &Cipher{aead: aead}, nil
}

// CounterNonce is the nonce the SDK uses: a u32 counter (from 0 at each boot, +1 per chunk) little-endian, then
// nine zero bytes. Simulators use it to produce exactly what devices send.
func CounterNonce(n uint32) (nonce [NonceSize]byte) {
	binary.LittleEndian.PutUint32(nonce[:], n)
	return nonce
}

// Decrypt returns ch with its plaintext payload (a new slice) and FlagEncrypted cleared; a chunk without the flag
// is returned unchanged. A payload too short for nonce and tag, or one that fails authentication (wrong key,
// corruption), is an ErrDecrypt, and the chunk is then returned still flagged encrypted, so ciphertext can never
// pass for plaintext (ferrite-server parses it anyway). The header is not authenticated, exactly as in the SDK.
func (c *Cipher) Decrypt(ch Chunk) (Chunk, error) {
	if ch.Flags&FlagEncrypted == 0 {
		return ch, nil
	}
	p := ch.Payload
	if len(p) < NonceSize+TagSize {
		return ch, fmt.Errorf("%w: payload is %d bytes, need at least %d", ErrDecrypt, len(p), NonceSize+TagSize)
	}
	plain, err := c.aead.Open(nil, p[:NonceSize], p[NonceSize:], nil)
	if err != nil {
		return ch, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	ch.Payload = plain
	ch.Flags &^= FlagEncrypted
	return ch, nil
}

// Encrypt is the device side, for simulators and tests: it seals ch's payload with nonce (the SDK's is
// CounterNonce) into nonce || ciphertext || tag and sets FlagEncrypted; AppendEncode then computes the new CRC.
// Note the SDK sends a chunk unencrypted when the sealed payload would exceed MaxSDKPayload (plaintext over 227
// bytes); that choice is the caller's. A payload that cannot fit payload_len once sealed is an ErrPayload.
func (c *Cipher) Encrypt(ch Chunk, nonce [NonceSize]byte) (Chunk, error) {
	if len(ch.Payload) > maxPayload-NonceSize-TagSize {
		return ch, fmt.Errorf("%w: payload of %d bytes is too large to encrypt, at most %d", ErrPayload,
			len(ch.Payload), maxPayload-NonceSize-TagSize)
	}
	out := make([]byte, NonceSize, NonceSize+len(ch.Payload)+TagSize)
	copy(out, nonce[:])
	ch.Payload = c.aead.Seal(out, nonce[:], ch.Payload, nil)
	ch.Flags |= FlagEncrypted
	return ch, nil
}
