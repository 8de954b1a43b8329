package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// Inspector is a person who visits schools (督学) and syncs from phones.
type Inspector struct {
	ID     string   `json:"id"`
	UserID string   `json:"user_id"`
	Name   string   `json:"name"`
	Phone  string   `json:"phone,omitempty"`
	Roles  []string `json:"roles"`
	Active bool     `json:"active"`
}

// Assignment lists a school with an inspector (挂牌) for a period. An open
// end (empty End) means "until further notice". Dates are YYYY-MM-DD in
// the office's local calendar.
type Assignment struct {
	ID          string `json:"id"`
	InspectorID string `json:"inspector_id"`
	SchoolID    string `json:"school_id"`
	Role        string `json:"role"` // responsibility or co_inspector
	Start       string `json:"start_date"`
	End         string `json:"end_date,omitempty"`
}

// ActiveOn reports whether the assignment covers the date (YYYY-MM-DD).
func (a Assignment) ActiveOn(date string) bool {
	return a.Start <= date && (a.End == "" || date <= a.End)
}

// Enrollment is a one-time code that lets one phone enroll for an
// inspector. Only the code's hash is stored.
type Enrollment struct {
	CodeHash    string     `json:"-"`
	InspectorID string     `json:"inspector_id"`
	ExpiresAt   time.Time  `json:"expires_at"`
	UsedAt      *time.Time `json:"used_at,omitempty"`
	CreatedBy   string     `json:"created_by"`
}

// Device is an enrolled phone. Only its token's hash is stored.
type Device struct {
	ID          uuid.UUID  `json:"device_id"`
	TokenHash   string     `json:"-"`
	InspectorID string     `json:"inspector_id"`
	UserID      string     `json:"user_id"`
	Name        string     `json:"name"`
	EnrolledAt  time.Time  `json:"enrolled_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
}

// DeviceStore keeps inspectors, assignments, enrollment codes and devices.
// Implementations translate storage errors at their edge: a missing
// document is syncproto.ENOTFOUND, a duplicate id syncproto.ECONFLICT.
type DeviceStore interface {
	// PutInspector creates or replaces an inspector.
	PutInspector(ctx context.Context, in Inspector) error
	// Inspector returns ENOTFOUND when there is no such inspector.
	Inspector(ctx context.Context, id string) (Inspector, error)
	// PutAssignment creates or replaces an assignment.
	PutAssignment(ctx context.Context, a Assignment) error
	// AssignmentsOfInspector returns all assignments of an inspector, past ones included.
	AssignmentsOfInspector(ctx context.Context, inspectorID string) ([]Assignment, error)
	// CreateEnrollment stores a new code; ECONFLICT if the hash exists.
	CreateEnrollment(ctx context.Context, e Enrollment) error
	// ClaimEnrollment marks an unused code used at now, atomically, and
	// returns it. ENOTFOUND when the code is unknown or already used.
	ClaimEnrollment(ctx context.Context, codeHash string, now time.Time) (Enrollment, error)
	// ReleaseEnrollment undoes the claim ClaimEnrollment made at claimedAt,
	// when the enrollment it was for failed: the code can be used again.
	// A claim made at another time is left alone; releasing a code that is
	// not claimed is not an error.
	ReleaseEnrollment(ctx context.Context, codeHash string, claimedAt time.Time) error
	// CreateDevice stores an enrolled device; ECONFLICT if the device id is taken.
	CreateDevice(ctx context.Context, d Device) error
	// DeviceByToken returns ENOTFOUND when no device has the token hash.
	DeviceByToken(ctx context.Context, tokenHash string) (Device, error)
	// RevokeDevice sets the revocation time; ENOTFOUND for an unknown device.
	RevokeDevice(ctx context.Context, id uuid.UUID, now time.Time) error
	// Devices lists the devices of an inspector.
	Devices(ctx context.Context, inspectorID string) ([]Device, error)
}

// Devices enrolls phones, authenticates their requests and decides which
// schools a principal may sync.
type Devices struct {
	Store DeviceStore
	// Now is the server clock; Rand the source of codes and tokens. Both
	// can be replaced in tests.
	Now  func() time.Time
	Rand io.Reader
	// Location is the office's time zone, for "today" in assignment
	// periods. Default Asia/Shanghai (UTC+8).
	Location *time.Location
	// EnrollmentTTL is how long a code stays valid. Default 72 hours.
	EnrollmentTTL time.Duration
}

// NewDevices returns a Devices service with the real clock and randomness.
func NewDevices(store DeviceStore) *Devices {
	return &Devices{Store: store, Now: time.Now, Rand: rand.Reader, Location: shanghai, EnrollmentTTL: 72 * time.Hour}
}

var shanghai = time.FixedZone("Asia/Shanghai", 8*3600)

// TokenPrefix starts every device token, so a leaked token is easy to
// recognise in logs and scanners.
const TokenPrefix = "fsd_"

// HashSecret returns the hex sha256 under which a code or token is stored.
func HashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// PutInspector validates and stores an inspector (admin only).
func (d *Devices) PutInspector(ctx context.Context, p Principal, in Inspector) error {
	if !p.Has(RoleAdmin) {
		return syncproto.Errorf(syncproto.EFORBIDDEN, "Only an administrator can create inspectors.")
	}
	bad := map[string]string{}
	if !uuidRe.MatchString(in.ID) {
		bad["id"] = "must be a canonical UUID"
	}
	if !uuidRe.MatchString(in.UserID) {
		bad["user_id"] = "must be a canonical UUID"
	}
	if strings.TrimSpace(in.Name) == "" {
		bad["name"] = "is required"
	}
	checkText(bad, "name", in.Name, maxNameRunes)
	checkText(bad, "phone", in.Phone, maxNameRunes)
	for i, r := range in.Roles {
		checkText(bad, fmt.Sprintf("roles[%d]", i), r, maxNameRunes)
	}
	if len(bad) > 0 {
		return syncproto.FieldError("The inspector is not valid.", bad)
	}
	if !slices.Contains(in.Roles, RoleInspector) {
		in.Roles = append(in.Roles, RoleInspector)
	}
	return d.Store.PutInspector(ctx, in)
}

// PutAssignment validates and stores an assignment (admin only).
func (d *Devices) PutAssignment(ctx context.Context, p Principal, a Assignment) error {
	if !p.Has(RoleAdmin) {
		return syncproto.Errorf(syncproto.EFORBIDDEN, "Only an administrator can assign schools.")
	}
	bad := map[string]string{}
	for k, v := range map[string]string{"id": a.ID, "inspector_id": a.InspectorID, "school_id": a.SchoolID} {
		if !uuidRe.MatchString(v) {
			bad[k] = "must be a canonical UUID"
		}
	}
	if _, err := time.Parse(time.DateOnly, a.Start); err != nil {
		bad["start_date"] = "must be a date YYYY-MM-DD"
	}
	if a.End != "" {
		if _, err := time.Parse(time.DateOnly, a.End); err != nil || a.End < a.Start {
			bad["end_date"] = "must be a date YYYY-MM-DD not before start_date"
		}
	}
	if a.Role == "" {
		a.Role = "responsibility"
	}
	if a.Role != "responsibility" && a.Role != "co_inspector" {
		bad["role"] = "must be responsibility or co_inspector"
	}
	if len(bad) > 0 {
		return syncproto.FieldError("The assignment is not valid.", bad)
	}
	if _, err := d.Store.Inspector(ctx, a.InspectorID); err != nil {
		if syncproto.ErrorCode(err) == syncproto.ENOTFOUND {
			return syncproto.FieldError("The assignment is not valid.", map[string]string{"inspector_id": "no such inspector"})
		}
		return err
	}
	return d.Store.PutAssignment(ctx, a)
}

// NewEnrollmentCode makes a one-time code with which one phone can enroll
// for the inspector. The code is returned once and stored only as a hash.
// It reads like "7KQ2-M9XD-4TWA" (60 bits), easy to type from a screen.
func (d *Devices) NewEnrollmentCode(ctx context.Context, p Principal, inspectorID string) (string, time.Time, error) {
	if !p.Has(RoleAdmin) {
		return "", time.Time{}, syncproto.Errorf(syncproto.EFORBIDDEN, "Only an administrator can make enrollment codes.")
	}
	in, err := d.Store.Inspector(ctx, inspectorID)
	if err != nil {
		if syncproto.ErrorCode(err) == syncproto.ENOTFOUND {
			return "", time.Time{}, syncproto.Errorf(syncproto.ENOTFOUND, "No inspector %s.", inspectorID)
		}
		return "", time.Time{}, err
	}
	if !in.Active {
		return "", time.Time{}, syncproto.Errorf(syncproto.ECONFLICT, "Inspector %s is not active.", inspectorID)
	}
	buf := make([]byte, 8)
	if _, err := io.ReadFull(d.Rand, buf); err != nil {
		return "", time.Time{}, fmt.Errorf("enrollment code: %w", err)
	}
	raw := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(buf)[:12]
	code := raw[0:4] + "-" + raw[4:8] + "-" + raw[8:12]
	exp := d.Now().Add(d.EnrollmentTTL)
	e := Enrollment{CodeHash: HashSecret(normalizeCode(code)), InspectorID: inspectorID, ExpiresAt: exp, CreatedBy: p.UserID}
	if err := d.Store.CreateEnrollment(ctx, e); err != nil {
		return "", time.Time{}, err
	}
	return code, exp, nil
}

func normalizeCode(c string) string {
	return strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(c))
}

// Enroll exchanges a one-time code for a device token. The token (256
// random bits) is returned once and stored only as a hash. Unknown, used
// and expired codes all get EUNAUTHORIZED with the same message, so the
// answer tells an attacker nothing.
//
// A refused enrollment keeps its code: the request is checked before the
// code is claimed, and a claim whose device cannot be stored (its id is
// taken, the store fails) is released.
func (d *Devices) Enroll(ctx context.Context, code string, deviceID uuid.UUID, name string) (string, Device, error) {
	bad := map[string]string{}
	if deviceID == uuid.Nil {
		bad["device_id"] = "is required"
	}
	checkText(bad, "device_name", name, maxNameRunes)
	if len(bad) > 0 {
		return "", Device{}, syncproto.FieldError("The enrollment is not valid.", bad)
	}
	now := d.Now()
	e, err := d.Store.ClaimEnrollment(ctx, HashSecret(normalizeCode(code)), now)
	if err != nil {
		if syncproto.ErrorCode(err) == syncproto.ENOTFOUND {
			return "", Device{}, syncproto.Errorf(syncproto.EUNAUTHORIZED, "This enrollment code is not valid. Ask the office for a new one.")
		}
		return "", Device{}, err
	}
	if now.After(e.ExpiresAt) {
		return "", Device{}, syncproto.Errorf(syncproto.EUNAUTHORIZED, "This enrollment code is not valid. Ask the office for a new one.")
	}
	token, dev, err := d.enroll(ctx, e, deviceID, name, now)
	if err != nil {
		// The release must happen even when the request was cancelled.
		if rerr := d.Store.ReleaseEnrollment(context.WithoutCancel(ctx), e.CodeHash, now); rerr != nil {
			return "", Device{}, fmt.Errorf("enroll: release the code after %v: %w", err, rerr)
		}
		return "", Device{}, err
	}
	return token, dev, nil
}

// enroll makes and stores the device of a claimed enrollment.
func (d *Devices) enroll(ctx context.Context, e Enrollment, deviceID uuid.UUID, name string, now time.Time) (string, Device, error) {
	in, err := d.Store.Inspector(ctx, e.InspectorID)
	if err != nil {
		return "", Device{}, err
	}
	buf := make([]byte, 32)
	if _, err := io.ReadFull(d.Rand, buf); err != nil {
		return "", Device{}, fmt.Errorf("device token: %w", err)
	}
	token := TokenPrefix + base64.RawURLEncoding.EncodeToString(buf)
	dev := Device{ID: deviceID, TokenHash: HashSecret(token), InspectorID: in.ID, UserID: in.UserID, Name: name, EnrolledAt: now}
	if err := d.Store.CreateDevice(ctx, dev); err != nil {
		if syncproto.ErrorCode(err) == syncproto.ECONFLICT {
			return "", Device{}, syncproto.Errorf(syncproto.ECONFLICT, "Device %s is already enrolled; make a new device id after a reinstall.", deviceID)
		}
		return "", Device{}, err
	}
	return token, dev, nil
}

// maxNameRunes bounds the names and other short texts the devices store
// keeps: a person's or a device's name, a phone number, a role.
const maxNameRunes = 200

// checkText adds to bad, under field, why value cannot be kept as a short
// text: too long, or holding a control character. U+0000 in particular
// cannot be stored at all (FerretDB keeps documents in PostgreSQL, whose
// text cannot hold it), and no name needs a control character. Checking
// before anything is written keeps a refused request from leaving half of
// itself behind.
func checkText(bad map[string]string, field, value string, maxRunes int) {
	if !utf8.ValidString(value) {
		bad[field] = "must be valid UTF-8 text"
		return
	}
	if strings.ContainsRune(value, 0) {
		bad[field] = "must not contain the character U+0000"
		return
	}
	if strings.IndexFunc(value, unicode.IsControl) >= 0 {
		bad[field] = "must not contain control characters"
		return
	}
	if utf8.RuneCountInString(value) > maxRunes {
		bad[field] = fmt.Sprintf("must be at most %d characters", maxRunes)
	}
}

// Authenticate returns the principal of a device token. Unknown and
// revoked tokens get EUNAUTHORIZED.
func (d *Devices) Authenticate(ctx context.Context, token string) (Principal, error) {
	if !strings.HasPrefix(token, TokenPrefix) {
		return Principal{}, syncproto.Errorf(syncproto.EUNAUTHORIZED, "A device token is required.")
	}
	dev, err := d.Store.DeviceByToken(ctx, HashSecret(token))
	if err != nil {
		if syncproto.ErrorCode(err) == syncproto.ENOTFOUND {
			return Principal{}, syncproto.Errorf(syncproto.EUNAUTHORIZED, "This device is not enrolled or was revoked.")
		}
		return Principal{}, err
	}
	if dev.RevokedAt != nil {
		return Principal{}, syncproto.Errorf(syncproto.EUNAUTHORIZED, "This device is not enrolled or was revoked.")
	}
	in, err := d.Store.Inspector(ctx, dev.InspectorID)
	if err != nil {
		return Principal{}, err
	}
	if !in.Active {
		return Principal{}, syncproto.Errorf(syncproto.EUNAUTHORIZED, "The inspector of this device is not active.")
	}
	return Principal{DeviceID: dev.ID, UserID: dev.UserID, InspectorID: dev.InspectorID, Roles: in.Roles, Replica: dev.ID, Name: in.Name}, nil
}

// Revoke revokes a device (admin only): its token stops working at once.
func (d *Devices) Revoke(ctx context.Context, p Principal, id uuid.UUID) error {
	if !p.Has(RoleAdmin) {
		return syncproto.Errorf(syncproto.EFORBIDDEN, "Only an administrator can revoke devices.")
	}
	return d.Store.RevokeDevice(ctx, id, d.Now())
}

// Today returns the office's local date.
func (d *Devices) Today() string {
	loc := d.Location
	if loc == nil {
		loc = shanghai
	}
	return d.Now().In(loc).Format(time.DateOnly)
}

// Assigned returns the sorted ids of the schools assigned to an inspector
// today: the assignments active on the office's local date. (Who may see
// and write which school is Access's rule; this is its input.)
func (d *Devices) Assigned(ctx context.Context, inspectorID string) ([]string, error) {
	as, err := d.Store.AssignmentsOfInspector(ctx, inspectorID)
	if err != nil {
		return nil, err
	}
	today := d.Today()
	var out []string
	for _, a := range as {
		if a.ActiveOn(today) {
			out = append(out, a.SchoolID)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
