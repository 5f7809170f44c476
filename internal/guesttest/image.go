//go:build linux

package guesttest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Image is a guest kernel and initramfs built by guest/build.sh.
type Image struct {
	// Kernel is the uncompressed ELF vmlinux, booted through its PVH entry.
	Kernel string
	// CompressedKernel is the bzImage as Debian ships it.
	CompressedKernel string
	// Initramfs is the gzip-compressed cpio archive with busybox and init.
	Initramfs string
}

// ImageDir returns where guest/build.sh puts the image: $KVMNET_GUEST_DIR
// when set, otherwise .cache/guest in the repository root.
func ImageDir() (string, error) {
	if dir := os.Getenv("KVMNET_GUEST_DIR"); dir != "" {
		return dir, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".cache", "guest"), nil
}

// RepoRoot returns the directory of kvmnet's go.mod, searched for from the
// working directory upwards. go test runs a test in its package directory,
// so that is inside the repository.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "guest", "build.sh")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.mod with guest/build.sh above the working directory")
		}
		dir = parent
	}
}

// FindImage returns the guest image, running guest/build.sh first. The
// script returns at once when the image is up to date; otherwise it fetches
// Debian's cloud kernel with apt-get, which takes a few seconds. FindImage
// fails the test (or skips it, outside CI) when the image cannot be built.
func FindImage(t testing.TB) Image {
	t.Helper()
	img, err := buildImage()
	if err != nil {
		failOrSkip(t, "guest image: %v", err)
	}
	return img
}

func buildImage() (Image, error) {
	root, err := RepoRoot()
	if err != nil {
		return Image{}, err
	}
	dir, err := ImageDir()
	if err != nil {
		return Image{}, err
	}

	script := filepath.Join(root, "guest", "build.sh")
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "KVMNET_GUEST_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return Image{}, fmt.Errorf("run %s: %w\n%s", script, err, out)
	}

	img := Image{
		Kernel:           filepath.Join(dir, "vmlinux"),
		CompressedKernel: filepath.Join(dir, "vmlinuz"),
		Initramfs:        filepath.Join(dir, "initramfs.cpio.gz"),
	}
	for _, f := range []string{img.Kernel, img.CompressedKernel, img.Initramfs} {
		if _, err := os.Stat(f); err != nil {
			return Image{}, fmt.Errorf("check guest image after %s: %w", script, err)
		}
	}
	return img, nil
}
