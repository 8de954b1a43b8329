// Package server is the server's domain: the services the HTTP layer calls
// and the interfaces that storage implementations satisfy.
//
// It plays the role of wtf's root package. Implementations live in
// subpackages named after what they wrap (server/mongo, server/minio), the
// HTTP layer in server/api, and the wiring in server/cmd/fieldsyncd.
// Subpackages talk to each other only in terms of this package's types and
// syncproto's.
//
// This package must not import Fiber, the MongoDB driver, minio-go or any
// other package that does network or disk I/O: it is types, interfaces and
// the logic that can be written against them.
package server

import "context"

// Check is a readiness check of one dependency, such as the database or the
// object store. Ping returns nil if the dependency can serve requests right
// now; it must return promptly once ctx is done.
//
// The API's /readyz endpoint runs every check and names the failing ones.
type Check struct {
	// Name is a short lower-case name shown to operators: "mongo", "minio".
	Name string
	Ping func(ctx context.Context) error
}
