package syncproto

import "slices"

// Roles a person can hold (a person can hold several). They are written in
// events' actor_role and held by server principals; this is the one list
// of them, which the server's authorization and the folds both read.
const (
	RoleInspector      = "inspector"       // responsibility inspector (责任督学), on a phone
	RoleZoneLeader     = "zone_leader"     // leader of a responsibility zone (组长), on a phone
	RoleOfficeReviewer = "office_reviewer" // county office reviewer (督导室)
	RoleOfficeHead     = "office_head"     // head of the county office; closes high-severity hazards
	RoleAdmin          = "admin"           // administrator; counts as office in every rule
	RoleSchoolLiaison  = "school_liaison"  // the school's supervision liaison (学校督导联络员)
	RolePrincipal      = "principal"       // the school's principal (校长)
)

// Role classes: who is in the field, in the office, at the school.
var (
	FieldRoles  = []string{RoleInspector, RoleZoneLeader}
	OfficeRoles = []string{RoleOfficeReviewer, RoleOfficeHead, RoleAdmin}
	SchoolRoles = []string{RoleSchoolLiaison, RolePrincipal}
)

// IsFieldRole reports whether role is one of FieldRoles.
func IsFieldRole(role string) bool { return slices.Contains(FieldRoles, role) }

// IsOfficeRole reports whether role is one of OfficeRoles.
func IsOfficeRole(role string) bool { return slices.Contains(OfficeRoles, role) }

// KnownRole reports whether role is a role of this list.
func KnownRole(role string) bool {
	return IsFieldRole(role) || IsOfficeRole(role) || slices.Contains(SchoolRoles, role)
}

// MayMake reports whether a person acting in role may make an event of
// type typ in the event log of a record of kind at all, in some state: a
// confirmation, a notice or a closing of a hazard only by the office, a
// fix on site only in the field, a note or a photo by anyone. Whether the
// event is valid in the record's state at its turn is the fold's question
// (FoldHazard, FoldTask); this one is the server's, asked of every pushed
// event before it is written. Kinds without an event log, and event types
// the kind does not know, are false.
func MayMake(kind, typ, role string) bool {
	if !KnownRole(role) {
		return false
	}
	switch kind {
	case "hazard":
		rule, ok := hazardRules[typ]
		return ok && (rule.roles == nil || hasRole(rule.roles, role))
	case "follow_up_task":
		switch typ {
		case EventNoteAdded, EventPhotoAdded:
			return true
		case EventCancelled, EventReassigned, EventReopened:
			return IsOfficeRole(role)
		case EventDone:
			return IsFieldRole(role)
		}
	}
	return false
}
