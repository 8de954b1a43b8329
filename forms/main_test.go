package forms_test

import (
	"flag"
	"os"
	"testing"
)

// TestMain shortens the fuzzer's minimization of new inputs from 60 s to
// 2 s unless -fuzzminimizetime is given. Minimizing an .xlsx workbook byte
// by byte unzips it thousands of times, so with the default a 60 s run of
// FuzzImportXLSForm spends nearly all its time minimizing instead of
// fuzzing. Crashers are still minimized for 2 s.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.fuzzminimizetime" })
	if !set {
		if err := flag.Set("test.fuzzminimizetime", "2s"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
