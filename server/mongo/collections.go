package mongo

// The collections of the database, each name written once. LogCollection
// (syncstore.go) holds the change log of every scope.
const (
	// ScopesCollection holds a scope's next sequence number and horizon.
	ScopesCollection = "scopes"
	// ConflictsCollection indexes the fields in conflict.
	ConflictsCollection = "conflicts"
	// OpsCollection, BatchesCollection and ResultsCollection are the op
	// and batch journal that makes pushes exactly-once.
	OpsCollection     = "ops"
	BatchesCollection = "batches"
	ResultsCollection = "results"
	// ClaimsCollection holds the journal's sweep claims.
	ClaimsCollection = "claims"
	// MetaCollection holds the store's own markers (migrations, sweeps).
	MetaCollection = "meta"

	// InspectorsCollection, AssignmentsCollection and DevicesCollection
	// are the DeviceStore's; EnrollmentsCollection holds the enrollment
	// codes (by hash) and EnrollmentClaimsCollection their one use.
	InspectorsCollection       = "inspectors"
	AssignmentsCollection      = "assignments"
	DevicesCollection          = "devices"
	EnrollmentsCollection      = "enrollments"
	EnrollmentClaimsCollection = "enrollment_claims"

	// MediaRecordsCollection, MediaPhotosCollection and
	// MediaThumbJobsCollection are the media metadata store's.
	MediaRecordsCollection   = "media_records"
	MediaPhotosCollection    = "media_photos"
	MediaThumbJobsCollection = "media_thumb_jobs"

	// MigrationsCollection records the one-off migrations that ran, one
	// document each ({_id: name, at}).
	MigrationsCollection = "migrations"

	// oldLogPrefix names the per-scope log collections of earlier
	// versions (log_<scope>), migrated into LogCollection.
	oldLogPrefix = "log_"
)
