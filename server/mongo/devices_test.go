package mongo_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server"
	servermongo "github.com/fieldsync/fieldsync/server/mongo"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// newDevices returns a Devices service on a fresh database, with a clock
// the test moves.
func newDevices(t *testing.T) (*server.Devices, *time.Time) {
	t.Helper()
	db := testenv.Mongo(t)
	store := servermongo.NewDeviceStore(db.Database())
	if err := store.EnsureIndexes(t.Context()); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2024, 10, 15, 8, 0, 0, 0, time.UTC)
	d := server.NewDevices(store)
	d.Now = func() time.Time { return now }
	return d, &now
}

var admin = server.Principal{UserID: "admin", Roles: []string{server.RoleAdmin}}

const (
	inspectorA = "0192b000-0000-7000-8000-000000000201"
	userA      = "0192b000-0000-7000-8000-000000000211"
	schoolA    = "0192b000-0000-7000-8000-000000000103"
	schoolB    = "0192b000-0000-7000-8000-000000000101"
)

func mustInspector(t *testing.T, d *server.Devices) {
	t.Helper()
	if err := d.PutInspector(t.Context(), admin, server.Inspector{ID: inspectorA, UserID: userA, Name: "陈立群", Active: true}); err != nil {
		t.Fatal(err)
	}
	if err := d.PutAssignment(t.Context(), admin, server.Assignment{ID: "0192b000-0000-7000-8000-000000000301", InspectorID: inspectorA, SchoolID: schoolA, Start: "2024-03-01"}); err != nil {
		t.Fatal(err)
	}
	// An assignment that ended: the school is no longer synced.
	if err := d.PutAssignment(t.Context(), admin, server.Assignment{ID: "0192b000-0000-7000-8000-000000000302", InspectorID: inspectorA, SchoolID: schoolB, Start: "2023-03-01", End: "2024-02-28"}); err != nil {
		t.Fatal(err)
	}
}

func TestDevices_EnrollAuthenticateRevoke(t *testing.T) {
	t.Parallel()
	d, _ := newDevices(t)
	mustInspector(t, d)
	ctx := t.Context()

	code, _, err := d.NewEnrollmentCode(ctx, admin, inspectorA)
	if err != nil {
		t.Fatal(err)
	}
	dev := uuid.Must(uuid.NewV7())
	token, _, err := d.Enroll(ctx, code, dev, "phone")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix([]byte(token), []byte(server.TokenPrefix)) || len(token) < 40 {
		t.Fatalf("token %q too short or without prefix", token)
	}
	// The code is one-time.
	if _, _, err := d.Enroll(ctx, code, uuid.Must(uuid.NewV7()), "other"); syncproto.ErrorCode(err) != syncproto.EUNAUTHORIZED {
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
	if err := d.Revoke(ctx, admin, dev); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Authenticate(ctx, token); syncproto.ErrorCode(err) != syncproto.EUNAUTHORIZED {
		t.Fatalf("revoked token: code=%q, want unauthorized", syncproto.ErrorCode(err))
	}
}

func TestDevices_Errors(t *testing.T) {
	t.Parallel()
	d, now := newDevices(t)
	mustInspector(t, d)
	ctx := t.Context()
	inspector := server.Principal{UserID: userA, InspectorID: inspectorA, Roles: []string{server.RoleInspector}}

	tests := []struct {
		name string
		run  func() error
		code string
	}{
		{"UnknownCode", func() error { _, _, err := d.Enroll(ctx, "AAAA-BBBB-CCCC", uuid.New(), "x"); return err }, syncproto.EUNAUTHORIZED},
		{"NoDeviceID", func() error { _, _, err := d.Enroll(ctx, "AAAA-BBBB-CCCC", uuid.Nil, "x"); return err }, syncproto.EINVALID},
		{"BadToken", func() error { _, err := d.Authenticate(ctx, "nonsense"); return err }, syncproto.EUNAUTHORIZED},
		{"UnknownToken", func() error { _, err := d.Authenticate(ctx, server.TokenPrefix+"abc"); return err }, syncproto.EUNAUTHORIZED},
		{"InspectorCannotMakeCodes", func() error { _, _, err := d.NewEnrollmentCode(ctx, inspector, inspectorA); return err }, syncproto.EFORBIDDEN},
		{"CodeForUnknownInspector", func() error {
			_, _, err := d.NewEnrollmentCode(ctx, admin, "0192b000-0000-7000-8000-0000000002ff")
			return err
		}, syncproto.ENOTFOUND},
		{"BadAssignment", func() error {
			return d.PutAssignment(ctx, admin, server.Assignment{ID: "x", InspectorID: inspectorA, SchoolID: schoolA, Start: "2024-13-01"})
		}, syncproto.EINVALID},
		{"ExpiredCode", func() error {
			code, _, err := d.NewEnrollmentCode(ctx, admin, inspectorA)
			if err != nil {
				return err
			}
			*now = now.Add(73 * time.Hour)
			_, _, err = d.Enroll(ctx, code, uuid.New(), "late")
			return err
		}, syncproto.EUNAUTHORIZED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := syncproto.ErrorCode(tt.run()); got != tt.code {
				t.Fatalf("code=%q, want %q", got, tt.code)
			}
		})
	}
}

// TestDevices_OneCodeOnePhone races several phones with one code: exactly
// one enrolls. FerretDB v1's findAndModify is not atomic, so the claim
// must not rely on it.
func TestDevices_OneCodeOnePhone(t *testing.T) {
	t.Parallel()
	d, _ := newDevices(t)
	mustInspector(t, d)
	ctx := t.Context()
	const phones = 8
	for round := range 5 {
		code, _, err := d.NewEnrollmentCode(ctx, admin, inspectorA)
		if err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, phones)
		for range phones {
			go func() {
				_, _, err := d.Enroll(ctx, code, uuid.Must(uuid.NewV7()), "racer")
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

// TestDevices_RefusedEnrollmentKeepsCode refuses an enrollment in each
// way a phone can get wrong, then enrolls with the same code: a refusal
// does not use the code up.
func TestDevices_RefusedEnrollmentKeepsCode(t *testing.T) {
	t.Parallel()
	d, _ := newDevices(t)
	mustInspector(t, d)
	ctx := t.Context()
	taken := uuid.Must(uuid.NewV7())
	first, _, err := d.NewEnrollmentCode(ctx, admin, inspectorA)
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
			code, _, err := d.NewEnrollmentCode(ctx, admin, inspectorA)
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

// TestDevices_TextTheStoreCannotHold refuses inspectors whose texts hold
// U+0000 (PostgreSQL text, under FerretDB, cannot), or other control
// characters, with the field named, and stores nothing.
func TestDevices_TextTheStoreCannotHold(t *testing.T) {
	t.Parallel()
	d, _ := newDevices(t)
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
			err := d.PutInspector(ctx, admin, in)
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
