//go:build linux

package vmtests

import (
	"context"
	"testing"
	"time"
)

// TestImageCache gets the default image twice: the second call must come
// from the cache, quickly, with the same files.
func TestImageCache(t *testing.T) {
	Require(t)
	first := TestImage(t, DefaultSpec())
	again, err := Build(context.Background(), DefaultSpec(), BuildOptions{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stage image-again: %s (cache hit %v)", again.Took, again.CacheHit)
	if !again.CacheHit {
		t.Error("second Build was not a cache hit")
	}
	if again.Took > 5*time.Second {
		t.Errorf("cache hit took %s, want under 5s", again.Took)
	}
	if again.Dir != first.Dir || again.RootUUID != first.RootUUID || again.KernelRelease != first.KernelRelease {
		t.Errorf("cache hit differs from the first image: %+v vs %+v", again, first)
	}
	// Order and duplicates in the package list do not make a new image.
	spec := DefaultSpec()
	spec.Packages = append([]string{spec.Packages[len(spec.Packages)-1]}, spec.Packages...)
	same, err := Build(context.Background(), spec, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !same.CacheHit || same.Key != first.Key {
		t.Errorf("reordered package list gave image %s (hit %v), want %s", same.Key, same.CacheHit, first.Key)
	}
}
