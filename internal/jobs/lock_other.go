//go:build !unix

package jobs

import "os"

// lockDir opens the lock file; on systems without flock the data folder is
// not protected against a second process.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
}
