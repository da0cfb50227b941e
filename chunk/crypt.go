package chunk

import (
	"crypto/aes"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/pion/dtls/v3/pkg/crypto/ccm"
)

// The SDK's CCM parameters: 13-byte nonce (L=2), 8-byte tag, no associated data.
const (
	NonceSize = 13
	TagSize   = 8
)

// Key is an AES-128 key.
type Key [16]byte

// ParseKey reads a key written as 32 hex characters (CHUNK_ENCRYPTION_KEY).
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) != 32 {
		return k, fmt.Errorf("%w: want 32 hex characters, got %d", ErrKey, len(s))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return k, fmt.Errorf("%w: %v", ErrKey, err)
	}
	return k, nil
}

// Cipher encrypts and decrypts chunk payloads the way the SDK's EncryptedTransport does. It is safe for
// concurrent use.
type Cipher struct {
	aead ccm.CCM
}

// NewCipher prepares AES-128-CCM with key k.
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

// CounterNonce is the SDK's nonce: a u32 counter, little-endian, then nine zero bytes.
func CounterNonce(n uint32) (nonce [NonceSize]byte) {
	binary.LittleEndian.PutUint32(nonce[:], n)
	return nonce
}

// Decrypt returns ch with its plaintext payload and FlagEncrypted cleared; a chunk without the flag is returned as
// it is. It never returns ciphertext as if it were plaintext.
func (c *Cipher) Decrypt(ch Chunk) (Chunk, error) {
	if ch.Flags&FlagEncrypted == 0 {
		return ch, nil
	}
	p := ch.Payload
	if len(p) < NonceSize+TagSize {
		return ch, fmt.Errorf("%w: payload is %d bytes, need at least %d", ErrDecrypt, len(p), NonceSize+TagSize)
	}
	plain, err := c.aead.Open(make([]byte, 0, len(p)-NonceSize-TagSize), p[:NonceSize], p[NonceSize:], nil)
	if err != nil {
		return ch, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	ch.Payload = plain
	ch.Flags &^= FlagEncrypted
	return ch, nil
}

// Encrypt is the device side: it seals ch's payload with nonce and sets FlagEncrypted.
func (c *Cipher) Encrypt(ch Chunk, nonce [NonceSize]byte) (Chunk, error) {
	if len(ch.Payload) > 0xFFFF-NonceSize-TagSize {
		return ch, fmt.Errorf("%w: payload too large to encrypt", ErrPayload)
	}
	out := make([]byte, NonceSize, NonceSize+len(ch.Payload)+TagSize)
	copy(out, nonce[:])
	ch.Payload = c.aead.Seal(out, nonce[:], ch.Payload, nil)
	ch.Flags |= FlagEncrypted
	return ch, nil
}
