package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

var _ server.DeviceStore = (*DeviceStore)(nil)

// DeviceStore implements server.DeviceStore. Every lookup is an equality
// on a top-level field (FerretDB pushes only those down), and codes and
// tokens are found by their hash as _id.
//
// Collections: inspectors {_id}, assignments {_id, inspector_id},
// enrollments {_id: code hash}, enrollment_claims {_id: code hash},
// devices {_id: token hash, device_id}.
type DeviceStore struct {
	db *mongo.Database
}

// NewDeviceStore returns a store on db. Call EnsureIndexes once at start.
func NewDeviceStore(db *mongo.Database) *DeviceStore { return &DeviceStore{db: db} }

// EnsureIndexes creates the indexes the lookups need (idempotent).
func (s *DeviceStore) EnsureIndexes(ctx context.Context) error {
	if _, err := s.db.Collection(AssignmentsCollection).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "inspector_id", Value: 1}}}); err != nil {
		return fmt.Errorf("mongo: assignments index: %w", err)
	}
	if _, err := s.db.Collection(DevicesCollection).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "device_id", Value: 1}}, Options: options.Index().SetUnique(true)}); err != nil {
		return fmt.Errorf("mongo: devices index: %w", err)
	}
	if _, err := s.db.Collection(DevicesCollection).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "inspector_id", Value: 1}}}); err != nil {
		return fmt.Errorf("mongo: devices index: %w", err)
	}
	return nil
}

type inspectorDoc struct {
	ID     string   `bson:"_id"`
	UserID string   `bson:"user_id"`
	Name   string   `bson:"name"`
	Phone  string   `bson:"phone,omitempty"`
	Roles  []string `bson:"roles"`
	Active bool     `bson:"active"`
}

type assignmentDoc struct {
	ID          string `bson:"_id"`
	InspectorID string `bson:"inspector_id"`
	SchoolID    string `bson:"school_id"`
	Role        string `bson:"role"`
	Start       string `bson:"start_date"`
	End         string `bson:"end_date,omitempty"`
}

type enrollmentDoc struct {
	ID          string    `bson:"_id"`
	InspectorID string    `bson:"inspector_id"`
	ExpiresAt   time.Time `bson:"expires_at"`
	CreatedBy   string    `bson:"created_by"`
}

type deviceDoc struct {
	ID          string     `bson:"_id"` // token hash
	DeviceID    string     `bson:"device_id"`
	InspectorID string     `bson:"inspector_id"`
	UserID      string     `bson:"user_id"`
	Name        string     `bson:"name"`
	EnrolledAt  time.Time  `bson:"enrolled_at"`
	RevokedAt   *time.Time `bson:"revoked_at,omitempty"`
}

func (d deviceDoc) toDevice() (server.Device, error) {
	id, err := uuid.Parse(d.DeviceID)
	if err != nil {
		return server.Device{}, fmt.Errorf("mongo: device %q: %w", d.DeviceID, err)
	}
	return server.Device{ID: id, TokenHash: d.ID, InspectorID: d.InspectorID, UserID: d.UserID, Name: d.Name, EnrolledAt: d.EnrolledAt, RevokedAt: d.RevokedAt}, nil
}

// PutInspector implements server.DeviceStore.
func (s *DeviceStore) PutInspector(ctx context.Context, in server.Inspector) error {
	doc := inspectorDoc(in)
	err := retry(ctx, func() error {
		_, err := s.db.Collection(InspectorsCollection).ReplaceOne(ctx, bson.D{{Key: "_id", Value: in.ID}}, doc, options.Replace().SetUpsert(true))
		return err
	})
	if err != nil {
		return fmt.Errorf("mongo: put inspector %s: %w", in.ID, err)
	}
	return nil
}

// Inspector implements server.DeviceStore.
func (s *DeviceStore) Inspector(ctx context.Context, id string) (server.Inspector, error) {
	var doc inspectorDoc
	err := s.db.Collection(InspectorsCollection).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return server.Inspector{}, syncproto.Errorf(syncproto.ENOTFOUND, "No inspector %s.", id)
	}
	if err != nil {
		return server.Inspector{}, fmt.Errorf("mongo: inspector %s: %w", id, err)
	}
	return server.Inspector(doc), nil
}

// PutAssignment implements server.DeviceStore.
func (s *DeviceStore) PutAssignment(ctx context.Context, a server.Assignment) error {
	_, err := s.db.Collection(AssignmentsCollection).ReplaceOne(ctx, bson.D{{Key: "_id", Value: a.ID}}, assignmentDoc(a), options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("mongo: put assignment %s: %w", a.ID, err)
	}
	return nil
}

// AssignmentsOfInspector implements server.DeviceStore.
func (s *DeviceStore) AssignmentsOfInspector(ctx context.Context, inspectorID string) ([]server.Assignment, error) {
	cur, err := s.db.Collection(AssignmentsCollection).Find(ctx, bson.D{{Key: "inspector_id", Value: inspectorID}})
	if err != nil {
		return nil, fmt.Errorf("mongo: assignments of %s: %w", inspectorID, err)
	}
	var docs []assignmentDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongo: assignments of %s: %w", inspectorID, err)
	}
	out := make([]server.Assignment, len(docs))
	for i, d := range docs {
		out[i] = server.Assignment(d)
	}
	return out, nil
}

// CreateEnrollment implements server.DeviceStore.
func (s *DeviceStore) CreateEnrollment(ctx context.Context, e server.Enrollment) error {
	_, err := s.db.Collection(EnrollmentsCollection).InsertOne(ctx, enrollmentDoc{ID: e.CodeHash, InspectorID: e.InspectorID, ExpiresAt: e.ExpiresAt, CreatedBy: e.CreatedBy})
	if mongo.IsDuplicateKeyError(err) {
		return syncproto.Errorf(syncproto.ECONFLICT, "Enrollment code exists.")
	}
	if err != nil {
		return fmt.Errorf("mongo: create enrollment: %w", err)
	}
	return nil
}

// ClaimEnrollment implements server.DeviceStore. The claim is an insert
// into enrollment_claims under the code's hash: a unique _id is the one
// compare-and-set FerretDB v1 makes atomic (its findAndModify and updates
// read and then write in two steps, so two phones racing with one code
// could both "win" a {used: false} → true update; measured). Exactly one
// insert succeeds; the others get a duplicate key and ENOTFOUND.
func (s *DeviceStore) ClaimEnrollment(ctx context.Context, codeHash string, now time.Time) (server.Enrollment, error) {
	var doc enrollmentDoc
	err := s.db.Collection(EnrollmentsCollection).FindOne(ctx, bson.D{{Key: "_id", Value: codeHash}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return server.Enrollment{}, syncproto.Errorf(syncproto.ENOTFOUND, "No such unused enrollment code.")
	}
	if err != nil {
		return server.Enrollment{}, fmt.Errorf("mongo: claim enrollment: %w", err)
	}
	_, err = s.db.Collection(EnrollmentClaimsCollection).InsertOne(ctx, bson.D{{Key: "_id", Value: codeHash}, {Key: "at", Value: now}})
	if mongo.IsDuplicateKeyError(err) {
		return server.Enrollment{}, syncproto.Errorf(syncproto.ENOTFOUND, "No such unused enrollment code.")
	}
	if err != nil {
		return server.Enrollment{}, fmt.Errorf("mongo: claim enrollment: %w", err)
	}
	return server.Enrollment{CodeHash: doc.ID, InspectorID: doc.InspectorID, ExpiresAt: doc.ExpiresAt, UsedAt: &now, CreatedBy: doc.CreatedBy}, nil
}

// ReleaseEnrollment implements server.DeviceStore: it removes the claim
// made at claimedAt (times are stored to the millisecond, as the filter
// is encoded).
func (s *DeviceStore) ReleaseEnrollment(ctx context.Context, codeHash string, claimedAt time.Time) error {
	_, err := s.db.Collection("enrollment_claims").DeleteOne(ctx, bson.D{{Key: "_id", Value: codeHash}, {Key: "at", Value: claimedAt}})
	if err != nil {
		return fmt.Errorf("mongo: release enrollment: %w", err)
	}
	return nil
}

// CreateDevice implements server.DeviceStore.
func (s *DeviceStore) CreateDevice(ctx context.Context, d server.Device) error {
	doc := deviceDoc{ID: d.TokenHash, DeviceID: d.ID.String(), InspectorID: d.InspectorID, UserID: d.UserID, Name: d.Name, EnrolledAt: d.EnrolledAt}
	_, err := s.db.Collection(DevicesCollection).InsertOne(ctx, doc)
	if mongo.IsDuplicateKeyError(err) {
		return syncproto.Errorf(syncproto.ECONFLICT, "Device %s is already enrolled.", d.ID)
	}
	if err != nil {
		return fmt.Errorf("mongo: create device: %w", err)
	}
	return nil
}

// DeviceByToken implements server.DeviceStore.
func (s *DeviceStore) DeviceByToken(ctx context.Context, tokenHash string) (server.Device, error) {
	var doc deviceDoc
	err := retry(ctx, func() error {
		return s.db.Collection(DevicesCollection).FindOne(ctx, bson.D{{Key: "_id", Value: tokenHash}}).Decode(&doc)
	})
	if errors.Is(err, mongo.ErrNoDocuments) {
		return server.Device{}, syncproto.Errorf(syncproto.ENOTFOUND, "No such device.")
	}
	if err != nil {
		return server.Device{}, fmt.Errorf("mongo: device by token: %w", err)
	}
	return doc.toDevice()
}

// RevokeDevice implements server.DeviceStore.
func (s *DeviceStore) RevokeDevice(ctx context.Context, id uuid.UUID, now time.Time) error {
	res, err := s.db.Collection(DevicesCollection).UpdateOne(ctx,
		bson.D{{Key: "device_id", Value: id.String()}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "revoked_at", Value: now}}}})
	if err != nil {
		return fmt.Errorf("mongo: revoke device %s: %w", id, err)
	}
	if res.MatchedCount == 0 {
		return syncproto.Errorf(syncproto.ENOTFOUND, "No device %s.", id)
	}
	return nil
}

// Devices implements server.DeviceStore.
func (s *DeviceStore) Devices(ctx context.Context, inspectorID string) ([]server.Device, error) {
	cur, err := s.db.Collection(DevicesCollection).Find(ctx, bson.D{{Key: "inspector_id", Value: inspectorID}})
	if err != nil {
		return nil, fmt.Errorf("mongo: devices of %s: %w", inspectorID, err)
	}
	var docs []deviceDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongo: devices of %s: %w", inspectorID, err)
	}
	out := make([]server.Device, 0, len(docs))
	for _, d := range docs {
		dev, err := d.toDevice()
		if err != nil {
			return nil, err
		}
		out = append(out, dev)
	}
	return out, nil
}

// AllAssignments returns every assignment, past ones included: the
// office's whole listing (a small collection), for reports.
func (s *DeviceStore) AllAssignments(ctx context.Context) ([]server.Assignment, error) {
	cur, err := s.db.Collection(AssignmentsCollection).Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("mongo: all assignments: %w", err)
	}
	var docs []assignmentDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongo: all assignments: %w", err)
	}
	out := make([]server.Assignment, len(docs))
	for i, d := range docs {
		out[i] = server.Assignment(d)
	}
	return out, nil
}
