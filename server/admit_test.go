package server

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/syncproto"
)

func TestAdmit(t *testing.T) {
	now := time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)
	dev := uuid.MustParse("0192b000-0000-7000-8000-0000000000d1")
	coworker := uuid.MustParse("0192b000-0000-7000-8000-0000000000d2")
	const user, other = "0192b000-0000-7000-8000-000000000211", "0192b000-0000-7000-8000-000000000212"
	phone := Principal{DeviceID: dev, Replica: dev, UserID: user, Roles: []string{RoleInspector}}
	// An inspector who also heads the office acts as office head only from
	// the office, never from a phone.
	headsOffice := phone
	headsOffice.Roles = []string{RoleInspector, RoleOfficeHead}
	office := Principal{UserID: other, Roles: []string{RoleOfficeHead}, Replica: coworker}
	automation := Principal{UserID: "admin", Roles: []string{RoleAdmin}, Automation: true}

	id := uuid.MustParse("0192b000-0000-7000-8000-000000000701")
	school := "0192b000-0000-7000-8000-000000000103"
	hlc := func(r uuid.UUID, d time.Duration) syncproto.HLC {
		return syncproto.HLC{Wall: now.Add(d).UnixMilli(), Replica: r}
	}
	vec := func(kv ...any) syncproto.Vector {
		var v syncproto.Vector
		for i := 0; i+1 < len(kv); i += 2 {
			v = v.Merge(syncproto.Vector{Counters: []syncproto.Counter{{Replica: kv[i].(uuid.UUID), Value: uint64(kv[i+1].(int))}}})
		}
		return v
	}
	version := func(r uuid.UUID, author string, v syncproto.Vector, value string) syncproto.FieldVersion {
		return syncproto.FieldVersion{Value: json.RawMessage(value), Vector: v, HLC: hlc(r, 0), Author: author}
	}
	t0 := int(now.Unix())
	// What the server holds: the co-worker wrote the title at t0.
	stored := &syncproto.Record{ID: id, Kind: "hazard", SchoolID: school, CreatedBy: other,
		Fields: map[string]syncproto.Field{"title": {version(coworker, other, vec(coworker, t0), `"灭火器过期"`)}},
		Items:  map[string][]syncproto.Item{"events": {{ID: "e1", Data: json.RawMessage(`{"type":"reported"}`), HLC: hlc(coworker, 0), Vector: vec(coworker, t0)}}},
	}
	set := func(field string, fv syncproto.FieldVersion) *syncproto.Record {
		return &syncproto.Record{ID: id, Kind: "hazard", SchoolID: school, Fields: map[string]syncproto.Field{field: {fv}}}
	}
	event := func(r uuid.UUID, data string) *syncproto.Record {
		return &syncproto.Record{ID: id, Kind: "hazard", SchoolID: school,
			Items: map[string][]syncproto.Item{"events": {{ID: "e2", Data: json.RawMessage(data), HLC: hlc(r, 0), Vector: vec(r, t0+5)}}}}
	}
	resolve := func(by string, r uuid.UUID, v syncproto.FieldVersion) *syncproto.Record {
		d := set("title", version(dev, user, vec(coworker, t0, dev, t0+9), `"已更换"`))
		d.Conflicts = []syncproto.ConflictRevision{{ID: "title@x", Field: "title", Version: v, ResolvedBy: by, ResolvedHLC: hlc(r, 0)}}
		return d
	}
	honest := set("description", version(dev, user, vec(coworker, t0, dev, t0+9), `"复查：仍未整改"`))

	tests := []struct {
		name   string
		p      Principal
		stored *syncproto.Record
		change *syncproto.Record
		code   string // "" when admitted
	}{
		{"HonestEdit", phone, stored, honest, ""},
		{"HonestNewRecord", phone, nil, &syncproto.Record{ID: id, Kind: "hazard", SchoolID: school, CreatedBy: user,
			Fields: map[string]syncproto.Field{"title": {version(dev, user, vec(dev, t0), `"新隐患"`)}}}, ""},
		{"SignedAsAnotherDevice", phone, stored, set("description", version(coworker, user, vec(coworker, t0+1), `"x"`)), syncproto.EFORBIDDEN},
		{"SignedAsAnotherPerson", phone, stored, set("description", version(dev, other, vec(dev, t0+1), `"x"`)), syncproto.EFORBIDDEN},
		{"CreatedByAnother", phone, nil, &syncproto.Record{ID: id, Kind: "hazard", SchoolID: school, CreatedBy: other}, syncproto.EFORBIDDEN},
		{"ClockYearsAhead", phone, stored, set("description", syncproto.FieldVersion{Value: json.RawMessage(`"x"`), Vector: vec(dev, t0), HLC: hlc(dev, 400*24*time.Hour), Author: user}), syncproto.EINVALID},
		{"ClockDaysAheadIsFlaggedNotRefused", phone, stored, set("description", syncproto.FieldVersion{Value: json.RawMessage(`"x"`), Vector: vec(dev, t0), HLC: hlc(dev, 3*24*time.Hour), Author: user}), ""},
		{"ForgedCounterOfCoworker", phone, stored, set("title", version(dev, user, vec(coworker, 1<<53-1, dev, t0+9), `"x"`)), syncproto.EINVALID},
		{"CounterOfCoworkerNotYetSeen", phone, stored, set("title", version(dev, user, vec(coworker, t0+1, dev, t0+9), `"x"`)), syncproto.EINVALID},
		{"OwnCounterNearOverflow", phone, stored, set("title", version(dev, user, vec(coworker, t0, dev, 1<<53-1), `"x"`)), syncproto.EINVALID},
		{"NewRecordNamingAnotherReplica", phone, nil, &syncproto.Record{ID: id, Kind: "hazard", SchoolID: school,
			Fields: map[string]syncproto.Field{"title": {version(dev, user, vec(coworker, 3, dev, t0), `"x"`)}}}, syncproto.EINVALID},
		{"NoteByInspector", phone, stored, event(dev, `{"type":"note_added","actor_role":"inspector","actor_id":"`+user+`","occurred_at":"2026-11-03T09:00:00+08:00"}`), ""},
		{"CloseAsOfficeHeadFromPhone", phone, stored, event(dev, `{"type":"closed","actor_role":"office_head","occurred_at":"2026-11-03T09:00:00+08:00"}`), syncproto.EFORBIDDEN},
		{"CloseAsOfficeHeadFromPhoneOfAnOfficeHead", headsOffice, stored, event(dev, `{"type":"closed","actor_role":"office_head","occurred_at":"2026-11-03T09:00:00+08:00"}`), syncproto.EFORBIDDEN},
		{"ConfirmAsInspector", phone, stored, event(dev, `{"type":"confirmed","actor_role":"inspector","occurred_at":"2026-11-03T09:00:00+08:00"}`), syncproto.EFORBIDDEN},
		{"EventWithoutRole", phone, stored, event(dev, `{"type":"note_added","occurred_at":"2026-11-03T09:00:00+08:00"}`), syncproto.EFORBIDDEN},
		{"EventAsAnotherActor", phone, stored, event(dev, `{"type":"note_added","actor_role":"inspector","actor_id":"`+other+`","occurred_at":"2026-11-03T09:00:00+08:00"}`), syncproto.EFORBIDDEN},
		{"EventNotJSONObject", phone, stored, event(dev, `[1]`), syncproto.EINVALID},
		{"CloseByOfficeHeadFromOffice", office, stored, event(coworker, `{"type":"closed","actor_role":"office_head","actor_id":"`+other+`","occurred_at":"2026-11-03T09:00:00+08:00"}`), ""},
		{"FixOnSiteFromOffice", office, stored, event(coworker, `{"type":"fixed_on_site","actor_role":"office_head","occurred_at":"2026-11-03T09:00:00+08:00"}`), syncproto.EFORBIDDEN},
		{"ItemSignedByAnother", phone, stored, event(coworker, `{"type":"note_added","actor_role":"inspector","occurred_at":"2026-11-03T09:00:00+08:00"}`), syncproto.EFORBIDDEN},
		{"ItemReusesAnId", phone, stored, &syncproto.Record{ID: id, Kind: "hazard", SchoolID: school,
			Items: map[string][]syncproto.Item{"events": {{ID: "e1", Data: json.RawMessage(`{"type":"note_added","actor_role":"inspector","occurred_at":"2026-11-03T09:00:00+08:00","note":"zz"}`), HLC: hlc(dev, 0), Vector: vec(dev, t0+5)}}}}, syncproto.EINVALID},
		{"ResolveAsAnother", phone, stored, resolve(other, dev, stored.Fields["title"][0]), syncproto.EFORBIDDEN},
		{"ResolveAKnownVersion", phone, stored, resolve(user, dev, stored.Fields["title"][0]), ""},
		{"ResolveASupersededVersion", phone, stored, resolve(user, dev, version(coworker, other, vec(coworker, t0-60), `"旧值"`)), ""},
		{"ResolveAnInventedVersion", phone, stored, resolve(user, dev, version(coworker, other, vec(coworker, t0+60), `"假的"`)), syncproto.EINVALID},
		{"AutomationImportsHistory", automation, nil, &syncproto.Record{ID: id, Kind: "hazard", SchoolID: school, CreatedBy: other,
			Fields: map[string]syncproto.Field{"title": {version(coworker, other, vec(coworker, 3), `"x"`)}}}, ""},
		{"AutomationStillHasAClock", automation, nil, set("title", syncproto.FieldVersion{Value: json.RawMessage(`"x"`), Vector: vec(coworker, 3), HLC: hlc(coworker, 400*24*time.Hour), Author: other}), syncproto.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *syncproto.Error
			if got = admitChange(tt.p, tt.change, now); got == nil {
				got = admitOn(tt.p, tt.stored, tt.change, now)
			}
			switch {
			case tt.code == "" && got != nil:
				t.Fatalf("refused: %v", got)
			case tt.code != "" && got == nil:
				t.Fatalf("admitted, want %s", tt.code)
			case tt.code != "" && got.Code != tt.code:
				t.Fatalf("%v, want code %s", got, tt.code)
			case got != nil && got.Message == "":
				t.Fatal("refused without a message")
			}
		})
	}
}
