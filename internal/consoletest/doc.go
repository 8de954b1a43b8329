// Package consoletest holds the browser test of the office console: a
// real fieldsyncd on the test stack, a phone (the Go engine) and the
// console in headless Chromium through internal/browsertest. It has no
// code outside its tests; it must not be imported.
package consoletest
