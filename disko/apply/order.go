package apply

import (
	"maps"
	"slices"
)

// sortedKeys walks a map in a fixed order so runs and logs repeat.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
