package server

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/syncproto"
)

// The Syncer's behaviour with a store is the contract of server/storetest,
// run against FerretDB by server/mongo. These are its pure parts.

func TestScopes(t *testing.T) {
	school := "0192b000-0000-7000-8000-000000000103"
	tests := []struct {
		name  string
		scope string
		valid bool
		grant Grant
		allow bool
	}{
		{"AssignedSchool", school, true, Grant{Schools: []string{school}}, true},
		{"OtherSchool", school, true, Grant{Schools: []string{"0192b000-0000-7000-8000-000000000101"}}, false},
		{"OfficeAnySchool", school, true, Grant{AllSchools: true}, true},
		{"ReferenceNeedsGrant", RefScope, true, Grant{AllSchools: true}, false},
		{"ReferenceByOffice", RefScope, true, Grant{Reference: true}, true},
		{"UpperCaseIsNotCanonical", "0192B000-0000-7000-8000-000000000103", false, Grant{AllSchools: true}, true},
		{"Prefixed", "school:" + school, false, Grant{}, false},
		{"Empty", "", false, Grant{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidScope(tt.scope); got != tt.valid {
				t.Errorf("ValidScope(%q) = %v, want %v", tt.scope, got, tt.valid)
			}
			if got := tt.grant.Allows(tt.scope); got != tt.allow {
				t.Errorf("%+v.Allows(%q) = %v, want %v", tt.grant, tt.scope, got, tt.allow)
			}
		})
	}
	if got := ScopeOf(&syncproto.Record{SchoolID: school}); got != school {
		t.Errorf("ScopeOf(school record) = %q", got)
	}
	if got := ScopeOf(&syncproto.Record{}); got != RefScope {
		t.Errorf("ScopeOf(record without school) = %q, want %q", got, RefScope)
	}
}

func TestStamp(t *testing.T) {
	now := time.Date(2024, 10, 15, 8, 0, 0, 0, time.UTC)
	dev := uuid.MustParse("0192b000-0000-7000-8000-000000000501")
	early := now.Add(-time.Hour)
	at := func(d time.Duration) syncproto.HLC { return syncproto.HLC{Wall: now.Add(d).UnixMilli(), Replica: dev} }
	record := func(d time.Duration) *syncproto.Record {
		return &syncproto.Record{
			ID: uuid.Must(uuid.NewV7()), Kind: "hazard", Rev: 7, ServerReceivedAt: &early,
			Fields: map[string]syncproto.Field{"title": {{Value: json.RawMessage(`"t"`), HLC: at(d)}}},
			Items:  map[string][]syncproto.Item{"events": {{ID: "e1", Data: json.RawMessage(`{}`), HLC: at(0), ServerReceivedAt: &early}}},
			Flags:  []string{"needs_review"},
		}
	}
	tests := []struct {
		name  string
		ahead time.Duration
		skew  bool
	}{
		{"OnTime", 0, false},
		{"SlightlyAhead", 9 * time.Minute, false},
		{"FarAhead", 11 * time.Minute, true},
		{"Behind", -48 * time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := record(tt.ahead)
			before, _ := syncproto.Marshal(in)
			// What a new record gets: stamp, then arrival on nothing stored.
			out := syncproto.StampArrival(nil, stamp(in, now), now)
			if after, _ := syncproto.Marshal(in); string(after) != string(before) {
				t.Fatal("stamp modified its input")
			}
			if out.Rev != 0 {
				t.Errorf("rev %d: the store numbers revisions", out.Rev)
			}
			if out.ServerReceivedAt == nil || !out.ServerReceivedAt.Equal(now) {
				t.Errorf("server_received_at %v, want now (a phone cannot claim an earlier arrival)", out.ServerReceivedAt)
			}
			if it := out.Items["events"][0]; it.ServerReceivedAt == nil || !it.ServerReceivedAt.Equal(now) {
				t.Errorf("item stamp %v, want now", it.ServerReceivedAt)
			}
			if got := slices.Contains(out.Flags, FlagClockSkew); got != tt.skew {
				t.Errorf("flags %v: clock_skew %v, want %v", out.Flags, got, tt.skew)
			}
			if !slices.Contains(out.Flags, "needs_review") || !slices.IsSorted(out.Flags) {
				t.Errorf("flags %v: the phone's flags must stay, sorted", out.Flags)
			}
		})
	}
}

func TestLatestOnly(t *testing.T) {
	a, b, c := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	in := []*syncproto.Record{{ID: a, Rev: 1}, {ID: b, Rev: 1}, {ID: a, Rev: 2}, {ID: c, Rev: 1}, {ID: a, Rev: 3}}
	name := map[uuid.UUID]string{a: "a", b: "b", c: "c"}
	var got []string
	for _, r := range latestOnly(in) {
		got = append(got, fmt.Sprintf("%s%d", name[r.ID], r.Rev))
	}
	if want := []string{"b1", "c1", "a3"}; !slices.Equal(got, want) {
		t.Errorf("latestOnly = %v, want %v (last state of each record, in log order)", got, want)
	}
}

func TestBatchDigest(t *testing.T) {
	op1, op2 := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	req := syncproto.PushRequest{DeviceID: uuid.Must(uuid.NewV7()), Changes: []syncproto.Change{{OpID: op1}, {OpID: op2}}}
	base := BatchDigest(req, []string{"x", "y"})
	swapped := req
	swapped.Changes = []syncproto.Change{{OpID: op2}, {OpID: op1}}
	other := req
	other.DeviceID = uuid.Must(uuid.NewV7())
	tests := []struct {
		name    string
		digest  string
		changed bool
	}{
		{"Same", BatchDigest(req, []string{"x", "y"}), false},
		{"OtherContent", BatchDigest(req, []string{"x", "z"}), true},
		{"OtherOrder", BatchDigest(swapped, []string{"y", "x"}), true},
		{"OtherDevice", BatchDigest(other, []string{"x", "y"}), true},
	}
	for _, tt := range tests {
		if (tt.digest != base) != tt.changed {
			t.Errorf("%s: digest changed %v, want %v", tt.name, tt.digest != base, tt.changed)
		}
	}
}
