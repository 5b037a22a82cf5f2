//go:build !race

package protocol

// raceEnabled reports a -race build, whose allocator pads objects, so exact
// allocation comparisons are skipped.
const raceEnabled = false
