package console

import (
	"net/http"

	"github.com/lodestone-fleet/lodestone"
)

// elfDelete removes a symbol file as DELETE /elfs/{id} does: its blob goes too unless another ELF row shares it,
// and the symbolicator forgets its cached copy. The store records the deletion in the audit log.
func (c *Console) elfDelete(w http.ResponseWriter, r *request) error {
	u := c.cfg.Updates
	if u.ELFs == nil || u.Blobs == nil || u.Symbols == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "symbol files are not kept on this server")
	}
	const back = "/ui/updates/firmware#elf"
	id, err := formID(r, "id")
	if err != nil {
		return c.done(w, r, back, "", err)
	}
	e, shared, err := u.ELFs.DeleteELF(r.ctx(), id)
	if err != nil {
		return c.done(w, r, back, "", err)
	}
	if !shared {
		u.Symbols.Forget(e.Blob.SHA256)
		if err := u.Blobs.Delete(r.ctx(), e.Blob.SHA256); err != nil {
			c.log.Warn("ELF deleted but its blob was not; the orphan sweep retries", "sha256", e.Blob.SHA256, "err", err)
		}
	}
	return c.done(w, r, back, "Deleted the symbols of "+e.Version+" ("+e.Filename+"); faults already "+
		"symbolicated keep their names.", nil)
}
