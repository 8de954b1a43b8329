package memstore

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// DeviceStore implements server.DeviceStore in memory. Lists come back in
// the order their items were first stored, as a database returns
// documents in insertion order. Its methods are safe for concurrent use.
type DeviceStore struct {
	mu          sync.Mutex
	inspectors  map[string]server.Inspector
	assignments []server.Assignment
	enrollments map[string]server.Enrollment // by code hash
	devices     []server.Device
}

var _ server.DeviceStore = (*DeviceStore)(nil)

// NewDeviceStore returns an empty store.
func NewDeviceStore() *DeviceStore {
	return &DeviceStore{inspectors: map[string]server.Inspector{}, enrollments: map[string]server.Enrollment{}}
}

func cloneInspector(in server.Inspector) server.Inspector {
	in.Roles = slices.Clone(in.Roles)
	return in
}

// dbTime is a time as a database keeps it: UTC, to the millisecond (BSON
// dates have no finer resolution).
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := dbTime(*t)
	return &c
}

func cloneDevice(d server.Device) server.Device {
	d.RevokedAt = cloneTime(d.RevokedAt)
	return d
}

// PutInspector implements server.DeviceStore.
func (s *DeviceStore) PutInspector(ctx context.Context, in server.Inspector) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inspectors[in.ID] = cloneInspector(in)
	return nil
}

// Inspector implements server.DeviceStore.
func (s *DeviceStore) Inspector(ctx context.Context, id string) (server.Inspector, error) {
	if err := ctx.Err(); err != nil {
		return server.Inspector{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.inspectors[id]
	if !ok {
		return server.Inspector{}, syncproto.Errorf(syncproto.ENOTFOUND, "No inspector %s.", id)
	}
	return cloneInspector(in), nil
}

// PutAssignment implements server.DeviceStore.
func (s *DeviceStore) PutAssignment(ctx context.Context, a server.Assignment) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.IndexFunc(s.assignments, func(x server.Assignment) bool { return x.ID == a.ID }); i >= 0 {
		s.assignments[i] = a
		return nil
	}
	s.assignments = append(s.assignments, a)
	return nil
}

// AssignmentsOfInspector implements server.DeviceStore.
func (s *DeviceStore) AssignmentsOfInspector(ctx context.Context, inspectorID string) ([]server.Assignment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []server.Assignment
	for _, a := range s.assignments {
		if a.InspectorID == inspectorID {
			out = append(out, a)
		}
	}
	return out, nil
}

// CreateEnrollment implements server.DeviceStore.
func (s *DeviceStore) CreateEnrollment(ctx context.Context, e server.Enrollment) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.enrollments[e.CodeHash]; ok {
		return syncproto.Errorf(syncproto.ECONFLICT, "Enrollment code exists.")
	}
	e.UsedAt, e.ExpiresAt = nil, dbTime(e.ExpiresAt)
	s.enrollments[e.CodeHash] = e
	return nil
}

// ClaimEnrollment implements server.DeviceStore.
func (s *DeviceStore) ClaimEnrollment(ctx context.Context, codeHash string, now time.Time) (server.Enrollment, error) {
	if err := ctx.Err(); err != nil {
		return server.Enrollment{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.enrollments[codeHash]
	if !ok || e.UsedAt != nil {
		return server.Enrollment{}, syncproto.Errorf(syncproto.ENOTFOUND, "No such unused enrollment code.")
	}
	e.UsedAt = cloneTime(&now)
	s.enrollments[codeHash] = e
	e.UsedAt = cloneTime(&now)
	return e, nil
}

// ReleaseEnrollment implements server.DeviceStore: it undoes the claim
// made at claimedAt (compared to the millisecond, as stores keep times).
func (s *DeviceStore) ReleaseEnrollment(ctx context.Context, codeHash string, claimedAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.enrollments[codeHash]
	if ok && e.UsedAt != nil && e.UsedAt.Truncate(time.Millisecond).Equal(claimedAt.Truncate(time.Millisecond)) {
		e.UsedAt = nil
		s.enrollments[codeHash] = e
	}
	return nil
}

// CreateDevice implements server.DeviceStore. Device ids and token
// hashes are both unique.
func (s *DeviceStore) CreateDevice(ctx context.Context, d server.Device) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.ContainsFunc(s.devices, func(x server.Device) bool { return x.ID == d.ID || x.TokenHash == d.TokenHash }) {
		return syncproto.Errorf(syncproto.ECONFLICT, "Device %s is already enrolled.", d.ID)
	}
	d.RevokedAt, d.EnrolledAt = nil, dbTime(d.EnrolledAt)
	s.devices = append(s.devices, d)
	return nil
}

// DeviceByToken implements server.DeviceStore.
func (s *DeviceStore) DeviceByToken(ctx context.Context, tokenHash string) (server.Device, error) {
	if err := ctx.Err(); err != nil {
		return server.Device{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		if d.TokenHash == tokenHash {
			return cloneDevice(d), nil
		}
	}
	return server.Device{}, syncproto.Errorf(syncproto.ENOTFOUND, "No such device.")
}

// RevokeDevice implements server.DeviceStore.
func (s *DeviceStore) RevokeDevice(ctx context.Context, id uuid.UUID, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.devices {
		if s.devices[i].ID == id {
			s.devices[i].RevokedAt = cloneTime(&now)
			return nil
		}
	}
	return syncproto.Errorf(syncproto.ENOTFOUND, "No device %s.", id)
}

// Devices implements server.DeviceStore.
func (s *DeviceStore) Devices(ctx context.Context, inspectorID string) ([]server.Device, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []server.Device
	for _, d := range s.devices {
		if d.InspectorID == inspectorID {
			out = append(out, cloneDevice(d))
		}
	}
	return out, nil
}

// AllAssignments returns every assignment, past ones included.
func (s *DeviceStore) AllAssignments(ctx context.Context) ([]server.Assignment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.assignments), nil
}
