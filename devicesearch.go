package lodestone

// SearchFold is how the stores compare DeviceFilter.Search: ASCII letters folded to lower case and nothing else,
// which SQLite's lower() and PostgreSQL's lower() under the "C" collation both do, so a search matches the same
// devices on every backend.
func SearchFold(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
