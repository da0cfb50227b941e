//go:build !unix

package netguard

func fdLimit() (int, bool) { return 0, false }
