//go:build !linux && !darwin

package doctor

import "errors"

func freeSpace(string) (uint64, uint64, error) {
	return 0, 0, errors.New("free space is only measured on Linux and macOS")
}
