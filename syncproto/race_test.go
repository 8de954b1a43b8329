//go:build race

package syncproto_test

// raceEnabled is true when the tests are built with -race.
func init() { raceEnabled = true }
