package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// DeviceFactory returns a fresh, empty DeviceStore for one test; it
// registers its own cleanup.
type DeviceFactory func(t *testing.T) server.DeviceStore

// TestDeviceStore runs the contract of server.DeviceStore, through the
// Devices service where the property is the service's (enrollment,
// authentication, revocation) and on the store directly for what the
// store alone promises (one claim per code, unique devices, not found).
// Each subtest gets its own store.
func TestDeviceStore(t *testing.T, open DeviceFactory) {
	tests := []struct {
		name string
		fn   func(*testing.T, server.DeviceStore)
	}{
		{"EnrollAuthenticateRevoke", testEnrollAuthenticateRevoke},
		{"Errors", testDeviceErrors},
		{"OneCodeOnePhone", testOneCodeOnePhone},
		{"StoreRecords", testDeviceStoreRecords},
		{"RefusedEnrollmentKeepsCode", testRefusedEnrollmentKeepsCode},
		{"TextTheStoreCannotHold", testTextTheStoreCannotHold},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

var deviceAdmin = server.Principal{UserID: "admin", Roles: []string{server.RoleAdmin}}

const (
	inspectorA = "0192b000-0000-7000-8000-000000000201"
	userA      = "0192b000-0000-7000-8000-000000000211"
	schoolA    = "0192b000-0000-7000-8000-000000000103"
	schoolB    = "0192b000-0000-7000-8000-000000000101"
)

// newDevices returns a Devices service on store with a clock the test
// moves.
func newDevices(store server.DeviceStore) (*server.Devices, *Clock) {
	clock := NewClock(Start)
	d := server.NewDevices(store)
	d.Now = clock.Now
	return d, clock
}

// mustInspector creates inspector A, assigned to school A from March 2024
// on, and to school B in an assignment that ended in February 2024.
func mustInspector(t *testing.T, d *server.Devices) {
	t.Helper()
	if err := d.PutInspector(t.Context(), deviceAdmin, server.Inspector{ID: inspectorA, UserID: userA, Name: "陈立群", Active: true}); err != nil {
		t.Fatal(err)
	}
	if err := d.PutAssignment(t.Context(), deviceAdmin, server.Assignment{ID: "0192b000-0000-7000-8000-000000000301", InspectorID: inspectorA, SchoolID: schoolA, Start: "2024-03-01"}); err != nil {
		t.Fatal(err)
	}
	// An assignment that ended: the school is no longer synced.
	if err := d.PutAssignment(t.Context(), deviceAdmin, server.Assignment{ID: "0192b000-0000-7000-8000-000000000302", InspectorID: inspectorA, SchoolID: schoolB, Start: "2023-03-01", End: "2024-02-28"}); err != nil {
		t.Fatal(err)
	}
}

func testEnrollAuthenticateRevoke(t *testing.T, store server.DeviceStore) {
	d, _ := newDevices(store)
	mustInspector(t, d)
	ctx := t.Context()

	code, _, err := d.NewEnrollmentCode(ctx, deviceAdmin, inspectorA)
	if err != nil {
		t.Fatal(err)
	}
	dev := newID()
	token, _, err := d.Enroll(ctx, code, dev, "phone")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(token, server.TokenPrefix) || len(token) < 40 {
		t.Fatalf("token %q too short or without prefix", token)
	}
	// The code is one-time.
	if _, _, err := d.Enroll(ctx, code, newID(), "other"); syncproto.ErrorCode(err) != syncproto.EUNAUTHORIZED {
		t.Fatalf("second enroll: code=%q, want unauthorized", syncproto.ErrorCode(err))
	}
	p, err := d.Authenticate(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if p.DeviceID != dev || p.InspectorID != inspectorA || !p.Has(server.RoleInspector) {
		t.Fatalf("principal %+v", p)
	}
	schools, err := d.Assigned(ctx, p.InspectorID)
	if err != nil {
		t.Fatal(err)
	}
	if len(schools) != 1 || schools[0] != schoolA {
		t.Fatalf("schools=%v, want only the active assignment's %s", schools, schoolA)
	}
	access := &server.Access{Assigned: d.Assigned}
	for school, want := range map[string]bool{schoolA: true, schoolB: false} {
		if got, err := access.CanSeeSchool(ctx, p, school); err != nil || got != want {
			t.Errorf("CanSeeSchool(%s)=%v,%v want %v", school, got, err, want)
		}
	}
	if err := d.Revoke(ctx, deviceAdmin, dev); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Authenticate(ctx, token); syncproto.ErrorCode(err) != syncproto.EUNAUTHORIZED {
		t.Fatalf("revoked token: code=%q, want unauthorized", syncproto.ErrorCode(err))
	}
}

func testDeviceErrors(t *testing.T, store server.DeviceStore) {
	d, clock := newDevices(store)
	mustInspector(t, d)
	ctx := t.Context()
	inspector := server.Principal{UserID: userA, InspectorID: inspectorA, Roles: []string{server.RoleInspector}}

	tests := []struct {
		name string
		run  func() error
		code string
	}{
		{"UnknownCode", func() error { _, _, err := d.Enroll(ctx, "AAAA-BBBB-CCCC", newID(), "x"); return err }, syncproto.EUNAUTHORIZED},
		{"NoDeviceID", func() error { _, _, err := d.Enroll(ctx, "AAAA-BBBB-CCCC", uuid.Nil, "x"); return err }, syncproto.EINVALID},
		{"BadToken", func() error { _, err := d.Authenticate(ctx, "nonsense"); return err }, syncproto.EUNAUTHORIZED},
		{"UnknownToken", func() error { _, err := d.Authenticate(ctx, server.TokenPrefix+"abc"); return err }, syncproto.EUNAUTHORIZED},
		{"InspectorCannotMakeCodes", func() error { _, _, err := d.NewEnrollmentCode(ctx, inspector, inspectorA); return err }, syncproto.EFORBIDDEN},
		{"CodeForUnknownInspector", func() error {
			_, _, err := d.NewEnrollmentCode(ctx, deviceAdmin, "0192b000-0000-7000-8000-0000000002ff")
			return err
		}, syncproto.ENOTFOUND},
		{"BadAssignment", func() error {
			return d.PutAssignment(ctx, deviceAdmin, server.Assignment{ID: "x", InspectorID: inspectorA, SchoolID: schoolA, Start: "2024-13-01"})
		}, syncproto.EINVALID},
		{"ExpiredCode", func() error {
			code, _, err := d.NewEnrollmentCode(ctx, deviceAdmin, inspectorA)
			if err != nil {
				return err
			}
			clock.Advance(73 * time.Hour)
			_, _, err = d.Enroll(ctx, code, newID(), "late")
			return err
		}, syncproto.EUNAUTHORIZED},
		{"RevokeUnknownDevice", func() error { return d.Revoke(ctx, deviceAdmin, newID()) }, syncproto.ENOTFOUND},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := syncproto.ErrorCode(tt.run()); got != tt.code {
				t.Fatalf("code=%q, want %q", got, tt.code)
			}
		})
	}
}

// testOneCodeOnePhone races several phones with one code: exactly one
// enrolls. FerretDB v1's findAndModify is not atomic, so the claim must
// not rely on it.
func testOneCodeOnePhone(t *testing.T, store server.DeviceStore) {
	d, _ := newDevices(store)
	mustInspector(t, d)
	ctx := t.Context()
	const phones = 8
	for round := range 5 {
		code, _, err := d.NewEnrollmentCode(ctx, deviceAdmin, inspectorA)
		if err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, phones)
		for range phones {
			go func() {
				_, _, err := d.Enroll(ctx, code, newID(), "racer")
				errs <- err
			}()
		}
		won := 0
		for range phones {
			switch err := <-errs; syncproto.ErrorCode(err) {
			case "":
				won++
			case syncproto.EUNAUTHORIZED:
			default:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d phones enrolled with one code, want 1", round, won)
		}
	}
}

// testDeviceStoreRecords checks what the store itself promises: a
// replaced inspector or assignment reads back as replaced, codes and
// devices are unique, a used code cannot be claimed again, and the lists
// hold what was stored.
func testDeviceStoreRecords(t *testing.T, st server.DeviceStore) {
	ctx := t.Context()
	in := server.Inspector{ID: inspectorA, UserID: userA, Name: "陈立群", Roles: []string{server.RoleInspector}, Active: true}
	if err := st.PutInspector(ctx, in); err != nil {
		t.Fatal(err)
	}
	in.Name, in.Active = "陈立群（退休）", false
	if err := st.PutInspector(ctx, in); err != nil {
		t.Fatal(err)
	}
	got, err := st.Inspector(ctx, inspectorA)
	if err != nil || got.Name != in.Name || got.Active || !slices.Equal(got.Roles, in.Roles) {
		t.Errorf("replaced inspector: %+v, %v; want %+v", got, err, in)
	}
	if _, err := st.Inspector(ctx, newID().String()); syncproto.ErrorCode(err) != syncproto.ENOTFOUND {
		t.Errorf("unknown inspector: %v, want not_found", err)
	}

	a := server.Assignment{ID: newID().String(), InspectorID: inspectorA, SchoolID: schoolA, Role: "responsibility", Start: "2024-03-01"}
	b := server.Assignment{ID: newID().String(), InspectorID: inspectorA, SchoolID: schoolB, Role: "co_inspector", Start: "2024-03-01"}
	for _, x := range []server.Assignment{a, b} {
		if err := st.PutAssignment(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	a.End = "2024-06-30"
	if err := st.PutAssignment(ctx, a); err != nil {
		t.Fatal(err)
	}
	as, err := st.AssignmentsOfInspector(ctx, inspectorA)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(as, func(x, y server.Assignment) int { return strings.Compare(x.SchoolID, y.SchoolID) })
	if want := []server.Assignment{b, a}; !slices.Equal(as, want) {
		t.Errorf("assignments: %+v, want %+v", as, want)
	}
	if as, err := st.AssignmentsOfInspector(ctx, newID().String()); err != nil || len(as) != 0 {
		t.Errorf("assignments of nobody: %+v, %v", as, err)
	}

	now := Start
	e := server.Enrollment{CodeHash: server.HashSecret("7KQ2M9XD4TWA"), InspectorID: inspectorA, ExpiresAt: now.Add(72 * time.Hour), CreatedBy: "admin"}
	if err := st.CreateEnrollment(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateEnrollment(ctx, e); syncproto.ErrorCode(err) != syncproto.ECONFLICT {
		t.Errorf("the same code twice: %v, want conflict", err)
	}
	claimed, err := st.ClaimEnrollment(ctx, e.CodeHash, now)
	if err != nil || claimed.InspectorID != inspectorA || claimed.UsedAt == nil || !claimed.UsedAt.Equal(now) {
		t.Errorf("claim: %+v, %v", claimed, err)
	}
	if _, err := st.ClaimEnrollment(ctx, e.CodeHash, now); syncproto.ErrorCode(err) != syncproto.ENOTFOUND {
		t.Errorf("second claim: %v, want not_found", err)
	}

	dev := server.Device{ID: newID(), TokenHash: server.HashSecret("fsd_one"), InspectorID: inspectorA, UserID: userA, Name: "手机", EnrolledAt: now}
	if err := st.CreateDevice(ctx, dev); err != nil {
		t.Fatal(err)
	}
	again := dev
	again.TokenHash = server.HashSecret("fsd_two")
	if err := st.CreateDevice(ctx, again); syncproto.ErrorCode(err) != syncproto.ECONFLICT {
		t.Errorf("a device id enrolled twice: %v, want conflict", err)
	}
	other := server.Device{ID: newID(), TokenHash: server.HashSecret("fsd_three"), InspectorID: inspectorA, UserID: userA, Name: "平板", EnrolledAt: now}
	if err := st.CreateDevice(ctx, other); err != nil {
		t.Fatal(err)
	}
	byToken, err := st.DeviceByToken(ctx, dev.TokenHash)
	if err != nil || byToken.ID != dev.ID || byToken.InspectorID != inspectorA || byToken.RevokedAt != nil {
		t.Errorf("device by token: %+v, %v", byToken, err)
	}
	if _, err := st.DeviceByToken(ctx, server.HashSecret("fsd_nobody")); syncproto.ErrorCode(err) != syncproto.ENOTFOUND {
		t.Errorf("unknown token: %v, want not_found", err)
	}
	revoked := now.Add(time.Hour)
	if err := st.RevokeDevice(ctx, dev.ID, revoked); err != nil {
		t.Fatal(err)
	}
	if got, err := st.DeviceByToken(ctx, dev.TokenHash); err != nil || got.RevokedAt == nil || !got.RevokedAt.Equal(revoked) {
		t.Errorf("revoked device: %+v, %v", got, err)
	}
	devs, err := st.Devices(ctx, inspectorA)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.ID.String()
	}
	slices.Sort(ids)
	want := []string{dev.ID.String(), other.ID.String()}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("devices of the inspector: %v, want %v", ids, want)
	}
}

// testRefusedEnrollmentKeepsCode refuses an enrollment in each
// way a phone can get wrong, then enrolls with the same code: a refusal
// does not use the code up.
func testRefusedEnrollmentKeepsCode(t *testing.T, store server.DeviceStore) {
	d, _ := newDevices(store)
	mustInspector(t, d)
	ctx := t.Context()
	taken := uuid.Must(uuid.NewV7())
	first, _, err := d.NewEnrollmentCode(ctx, deviceAdmin, inspectorA)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Enroll(ctx, first, taken, "已登记的手机"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		deviceID uuid.UUID
		device   string
		code     string
		field    string // named in the refusal, "" for none
	}{
		{"NULInDeviceName", uuid.Must(uuid.NewV7()), "陈立群的\x00手机", syncproto.EINVALID, "device_name"},
		{"ControlCharacterInDeviceName", uuid.Must(uuid.NewV7()), "phone\x1b[31m", syncproto.EINVALID, "device_name"},
		{"DeviceNameTooLong", uuid.Must(uuid.NewV7()), strings.Repeat("长", 201), syncproto.EINVALID, "device_name"},
		{"InvalidUTF8DeviceName", uuid.Must(uuid.NewV7()), "phone\xff", syncproto.EINVALID, "device_name"},
		{"NoDeviceID", uuid.Nil, "phone", syncproto.EINVALID, "device_id"},
		{"DeviceIDTaken", taken, "reinstalled phone", syncproto.ECONFLICT, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, err := d.NewEnrollmentCode(ctx, deviceAdmin, inspectorA)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = d.Enroll(ctx, code, tt.deviceID, tt.device)
			if got := syncproto.ErrorCode(err); got != tt.code {
				t.Fatalf("refused enrollment: code %q (%v), want %q", got, err, tt.code)
			}
			if tt.field != "" {
				var pe *syncproto.Error
				if !errors.As(err, &pe) || pe.Fields[tt.field] == "" {
					t.Errorf("refusal %v does not name %s", err, tt.field)
				}
			}
			dev := uuid.Must(uuid.NewV7())
			token, _, err := d.Enroll(ctx, code, dev, "陈立群的手机")
			if err != nil {
				t.Fatalf("the same code after the refusal: %v", err)
			}
			if p, err := d.Authenticate(ctx, token); err != nil || p.DeviceID != dev {
				t.Errorf("the device enrolled after the refusal: %+v, %v", p, err)
			}
			// Still one phone per code.
			if _, _, err := d.Enroll(ctx, code, uuid.Must(uuid.NewV7()), "third"); syncproto.ErrorCode(err) != syncproto.EUNAUTHORIZED {
				t.Errorf("the code once more: %v, want unauthorized", err)
			}
		})
	}
}

// testTextTheStoreCannotHold refuses inspectors whose texts hold
// U+0000 (PostgreSQL text, under FerretDB, cannot), or other control
// characters, with the field named, and stores nothing.
func testTextTheStoreCannotHold(t *testing.T, store server.DeviceStore) {
	d, _ := newDevices(store)
	ctx := t.Context()
	tests := []struct {
		name  string
		edit  func(*server.Inspector)
		field string
	}{
		{"NULInName", func(in *server.Inspector) { in.Name = "陈\x00立群" }, "name"},
		{"NULInPhone", func(in *server.Inspector) { in.Phone = "138\x000000" }, "phone"},
		{"NULInRole", func(in *server.Inspector) { in.Roles = []string{"inspector", "office\x00head"} }, "roles[1]"},
		{"NewlineInName", func(in *server.Inspector) { in.Name = "陈立群\n管理员" }, "name"},
		{"NameTooLong", func(in *server.Inspector) { in.Name = strings.Repeat("陈", 201) }, "name"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := server.Inspector{ID: fmt.Sprintf("0192b000-0000-7000-8000-0000000004%02d", i), UserID: userA, Name: "陈立群", Active: true}
			tt.edit(&in)
			err := d.PutInspector(ctx, deviceAdmin, in)
			var pe *syncproto.Error
			if syncproto.ErrorCode(err) != syncproto.EINVALID || !errors.As(err, &pe) || pe.Fields[tt.field] == "" {
				t.Fatalf("PutInspector = %v, want invalid naming %s", err, tt.field)
			}
			if _, err := d.Store.Inspector(ctx, in.ID); syncproto.ErrorCode(err) != syncproto.ENOTFOUND {
				t.Errorf("the refused inspector was stored: %v", err)
			}
		})
	}
}
