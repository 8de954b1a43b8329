// Package faults is fieldsync's fault suite: real phones (package mobile's
// engine, over HTTP) sync against real fieldsyncd processes on the real
// FerretDB, PostgreSQL and MinIO of a stack started by deploy/stack.sh,
// while the suite kills, stops, fills or restarts one piece at a time:
//
//   - kill: fieldsyncd SIGKILLed at random points of 50 push batches from
//     several phones, and restarted;
//   - replicas2, replicas3: two and three fieldsyncd replicas behind
//     HAProxy (round robin), one killed and restarted under load;
//   - ferretdb, postgres: FerretDB, then PostgreSQL, stopped and started
//     again mid-sync, fieldsyncd left running;
//   - minio-stop: MinIO stopped for 30 s mid-upload;
//   - minio-dist: MinIO in distributed mode (4 processes, erasure coded)
//     behind HAProxy, one node killed during uploads and reads;
//   - disk-full: MinIO's disk (a small tmpfs) filled up, then freed.
//
// Every scenario ends with an oracle over every change a phone made and
// the server acknowledged: an observer phone pulls the server's state from
// scratch, and each field version, event and photo must be there (as
// itself, in the conflict log, or under a version whose writer had seen
// it), none twice, and every phone must hold exactly what the observer
// holds. The suite prints one table (what was done, how many times, lost,
// duplicated, time to recover) and writes it as JSON.
//
// The suite is opt-in: it runs only when FIELDSYNC_FAULTS names scenarios
// ("all", "ci" or a comma-separated list), as "make faults" and .ci/run
// do through deploy/faults.sh; plain "go test ./..." skips it. Every port
// it opens is FIELDSYNC_FAULTS_PORT_BASE plus a fixed offset below 50.
//
// It drives fieldsyncd only through its HTTP API and processes, like
// internal/e2e, so it imports no server package.
package faults
