package mcpserver

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// ConfirmTTL is how long a confirmation token can be redeemed (Ferro's 300 s).
const ConfirmTTL = 5 * time.Minute

// maxPending bounds the confirmations waiting at once, so a caller cannot fill memory with unredeemed tokens.
const maxPending = 10000

// Confirmation refusals, as error_kind in a tool's error answer.
const (
	KindConfirmationRequired = "confirmation_required" // a write was called in a way that skips the first step
	KindConfirmationInvalid  = "confirmation_invalid"  // unknown token, or one already used
	KindConfirmationExpired  = "confirmation_expired"
	KindConfirmationMismatch = "confirmation_mismatch" // another caller, another tool or other arguments
)

// confirmation is a write waiting for its confirm call.
type confirmation struct {
	caller  string // principalKey of whom it was issued to
	tool    string
	args    string // canonical JSON of the arguments
	expires time.Time
}

// confirmations keeps pending writes by the SHA-256 of their token: the token itself is a bearer secret and is
// only ever in the caller's hands.
type confirmations struct {
	mu      sync.Mutex
	ttl     time.Duration
	now     func() time.Time
	pending map[[32]byte]confirmation
}

func newConfirmations(ttl time.Duration, now func() time.Time) *confirmations {
	return &confirmations{ttl: ttl, now: now, pending: map[[32]byte]confirmation{}}
}

// issue returns a new single-use token for caller to perform tool with args.
func (c *confirmations) issue(caller, tool, args string) (string, time.Time, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", time.Time{}, err
	}
	token := "cfm_" + base64.RawURLEncoding.EncodeToString(raw[:])
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, p := range c.pending {
		if !now.Before(p.expires) {
			delete(c.pending, h)
		}
	}
	if len(c.pending) >= maxPending {
		return "", time.Time{}, lodestone.Errorf(lodestone.EUNAVAILABLE,
			"too many writes wait for confirmation; confirm or let them expire (%s) first", c.ttl)
	}
	exp := now.Add(c.ttl)
	c.pending[sha256.Sum256([]byte(token))] = confirmation{caller: caller, tool: tool, args: args, expires: exp}
	return token, exp, nil
}

// redeem uses up token and checks that it was issued to caller for tool with exactly args. Any redeem uses the
// token up, also a refused one: a token shown to someone else, or tried with other arguments, is spent.
func (c *confirmations) redeem(token, caller, tool, args string) (kind, msg string) {
	h := sha256.Sum256([]byte(token))
	c.mu.Lock()
	p, ok := c.pending[h]
	delete(c.pending, h)
	c.mu.Unlock()
	switch {
	case !ok:
		return KindConfirmationInvalid, "unknown or already used confirmation token: call " + tool +
			" again for a new one"
	case !c.now().Before(p.expires):
		return KindConfirmationExpired, "the confirmation token expired (tokens last " + c.ttl.String() +
			"): call " + tool + " again for a new one"
	case p.caller != caller:
		return KindConfirmationMismatch, "the confirmation token was issued to another caller; it is now spent"
	case p.tool != tool:
		return KindConfirmationMismatch, "the confirmation token was issued for " + p.tool + ", not " + tool +
			"; it is now spent"
	case p.args != args:
		return KindConfirmationMismatch, "the arguments differ from those the confirmation token was issued for; " +
			"it is now spent: call " + tool + " again with the arguments you want"
	}
	return "", ""
}
