package netguard

// DefaultMaxConns is a per-listener connection cap for a process with the given number of listeners: a quarter
// of the open-file limit (at least 64) stays for the database, blobs and outgoing connections, the rest is split
// evenly, so every listener full at once still leaves descriptors for the others and for storage. Between 16 and
// 16384; 4096 when the limit is unknown.
func DefaultMaxConns(listeners int) int {
	n, ok := fdLimit()
	if !ok {
		return 4096
	}
	per := (n - max(n/4, 64)) / max(listeners, 1)
	return min(max(per, 16), 16384)
}
