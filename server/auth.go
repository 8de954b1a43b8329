package server

import (
	"context"
	"slices"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/syncproto"
)

// Roles a principal can hold: syncproto's list, the one the folds read
// (a person can hold several).
const (
	RoleInspector      = syncproto.RoleInspector
	RoleZoneLeader     = syncproto.RoleZoneLeader
	RoleOfficeReviewer = syncproto.RoleOfficeReviewer
	RoleOfficeHead     = syncproto.RoleOfficeHead
	RoleSchoolLiaison  = syncproto.RoleSchoolLiaison
	RoleAdmin          = syncproto.RoleAdmin
)

// Principal is who makes a request: an enrolled device acting for its
// inspector, or an office user or administrator. Handlers put it in the
// request context (WithPrincipal); services read it (PrincipalFrom) to
// decide what the caller may see and write.
type Principal struct {
	// DeviceID is the enrolled device (zero for office users). It is also
	// the device's replica id in version vectors.
	DeviceID uuid.UUID
	// UserID is the person: the inspector's user id for a device.
	UserID string
	// InspectorID is set when the person is an inspector.
	InspectorID string
	// Roles the person holds.
	Roles []string
	// Replica is the replica id the principal writes with in version
	// vectors and clock stamps: an enrolled device's id. Every version a
	// push carries must be stamped with it (see admit.go).
	Replica syncproto.ReplicaID
	// Automation is set for the admin token: scripts that import or seed
	// records written by other people, which are therefore not held to
	// the identity and history rules of pushes.
	Automation bool

	// Name is the person's name, for the console and the audit log.
	Name string
	// Session is the id of the console session of an office account
	// ("" otherwise): the audit log names it as where a decision came from.
	Session string
	// Scoped is set for an account that works on some zones and schools
	// only (Zones, Schools) rather than the whole county.
	Scoped  bool
	Zones   []string
	Schools []string
}

// Has reports whether the principal holds the role. Admins hold every role.
func (p Principal) Has(role string) bool {
	return slices.Contains(p.Roles, role) || slices.Contains(p.Roles, RoleAdmin)
}

// IsDevice reports whether the principal is an enrolled device.
func (p Principal) IsDevice() bool { return p.DeviceID != uuid.Nil }

type principalKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal in ctx, and false when there is none.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
