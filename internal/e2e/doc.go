// Package e2e holds end-to-end tests that drive real phones (package
// mobile's engine, over HTTP) against a real fieldsyncd on the real
// FerretDB and MinIO of the test stack.
//
// The tests live here, outside mobile/, so that the rule "mobile never
// imports server" stays simple: nothing under mobile/ imports server even
// in tests. fieldsyncd is built and started as a subprocess, configured
// through the FIELDSYNC_* variables internal/testenv reads, and reached
// only through its HTTP API.
package e2e
