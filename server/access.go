package server

import (
	"context"
	"slices"

	"github.com/fieldsync/fieldsync/syncproto"
)

// Access holds every rule of who may see and write which records: the
// services ask it, the HTTP layer only authenticates. (The rules on what a
// change may claim — identity, roles in events, history — are in
// admit.go; the hazard's transitions in syncproto's fold.)
//
// The rules, by principal (a person can hold several roles; the admin
// token is automation and may do everything):
//
//	                          see (records, photos,    write (push)         resolve     compact
//	                          conflicts)
//	inspector's device        reference data and the   the schools          no          no
//	                          schools assigned today   assigned today
//	office reviewer           every school             every school         yes         no
//	office head               every school             every school and     yes         no
//	                                                   reference data
//	admin (token or account)  everything               everything           yes         yes
//	inspector's console       its scope                nothing              no          no
//	account
//	anyone else               reference data           nothing              no          no
//
// An office account scoped to zones and schools (Principal.Scoped, from
// the console's accounts) sees and writes only those: its schools and
// the schools of its zones (ZoneSchools).
//
// A pull reads the reference data and, for a device, its assigned
// schools: phones pull; the office reads records one by one or through
// the office's read model, not by downloading every school.
type Access struct {
	// Assigned returns the ids of the schools assigned to an inspector
	// today (Devices.Assigned).
	Assigned func(ctx context.Context, inspectorID string) ([]string, error)
	// ZoneSchools returns the schools of a responsibility zone, for
	// office accounts scoped to zones (nil: zones give no schools).
	ZoneSchools func(ctx context.Context, zone string) ([]string, error)
}

// office reports whether p is an office principal (not a device) holding
// an office role that sees every school.
func office(p Principal) bool {
	return !p.IsDevice() && (p.Has(RoleOfficeReviewer) || p.Has(RoleOfficeHead))
}

// schools returns the schools a principal may see and write: all, or the
// listed ones.
func (a *Access) schools(ctx context.Context, p Principal) (all bool, ids []string, err error) {
	switch {
	case p.IsDevice():
		// A phone works in the field, whatever else its person is:
		// office powers come only with an office principal.
		if p.InspectorID == "" || a.Assigned == nil {
			return false, nil, nil
		}
		ids, err := a.Assigned(ctx, p.InspectorID)
		return false, ids, err
	case p.Scoped && !p.Automation && (office(p) || p.Has(RoleInspector)):
		// An office account scoped to zones and schools (DOMAIN §2.4:
		// a zone's leader and reviewers work on its schools); an
		// inspector's console account sees its scope and nothing more.
		ids := slices.Clone(p.Schools)
		for _, z := range p.Zones {
			if a.ZoneSchools == nil {
				break
			}
			more, err := a.ZoneSchools(ctx, z)
			if err != nil {
				return false, nil, err
			}
			ids = append(ids, more...)
		}
		slices.Sort(ids)
		return false, slices.Compact(ids), nil
	case office(p):
		return true, nil, nil
	}
	return false, nil, nil
}

// Grant returns what the principal may write in a push.
func (a *Access) Grant(ctx context.Context, p Principal) (Grant, error) {
	all, ids, err := a.schools(ctx, p)
	if err != nil {
		return Grant{}, err
	}
	if !p.IsDevice() && !office(p) && !p.Automation {
		// Console accounts of inspectors look; they write from phones.
		all, ids = false, nil
	}
	return Grant{Schools: ids, AllSchools: all, Reference: !p.IsDevice() && p.Has(RoleOfficeHead)}, nil
}

// PullScopes returns the scopes a principal pulls: reference data and,
// for a device, its assigned schools.
func (a *Access) PullScopes(ctx context.Context, p Principal) ([]string, error) {
	if !p.IsDevice() {
		return []string{RefScope}, nil
	}
	_, ids, err := a.schools(ctx, p)
	if err != nil {
		return nil, err
	}
	return append([]string{RefScope}, ids...), nil
}

// CanSeeSchool reports whether the principal may see the records and
// photos of a school.
func (a *Access) CanSeeSchool(ctx context.Context, p Principal, school string) (bool, error) {
	all, ids, err := a.schools(ctx, p)
	if err != nil {
		return false, err
	}
	return all || slices.Contains(ids, school), nil
}

// CanSee checks that the principal may see a scope (a school, or
// reference data, which everyone sees): EFORBIDDEN otherwise.
func (a *Access) CanSee(ctx context.Context, p Principal, scope string) error {
	if scope == RefScope {
		return nil
	}
	ok, err := a.CanSeeSchool(ctx, p, scope)
	if err != nil {
		return err
	}
	if !ok {
		return syncproto.Errorf(syncproto.EFORBIDDEN, "You may not see the records of school %s.", scope)
	}
	return nil
}

// ListConflicts checks a conflict listing: the office lists any scope or
// all of them; anyone else one scope it may see.
func (a *Access) ListConflicts(ctx context.Context, p Principal, f ConflictFilter) error {
	if f.Scope == "" {
		if office(p) {
			return nil
		}
		return syncproto.FieldError("Say which school's conflicts to list.", map[string]string{"scope": "is required unless you are the office"})
	}
	return a.CanSee(ctx, p, f.Scope)
}

// Resolve checks that the principal may resolve a conflict in scope:
// the office, in a scope it sees.
func (a *Access) Resolve(ctx context.Context, p Principal, scope string) error {
	if !office(p) {
		return syncproto.Errorf(syncproto.EFORBIDDEN, "Only the office resolves conflicts.")
	}
	return a.CanSee(ctx, p, scope)
}

// Compact checks that the principal may compact the change log: an
// administrator.
func (a *Access) Compact(p Principal) error {
	if !p.Has(RoleAdmin) {
		return syncproto.Errorf(syncproto.EFORBIDDEN, "Only an administrator compacts the change log.")
	}
	return nil
}
