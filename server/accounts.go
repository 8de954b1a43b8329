package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/crypto/argon2"

	"github.com/fieldsync/fieldsync/syncproto"
)

// Office accounts: people of the county office (and inspectors who look
// at their own schools in a browser) sign in to the console with a login
// and a password. The admin token stays for automation.
//
// An account holds roles (inspector, office_reviewer, office_head, admin)
// and a scope: the responsibility zones and schools it works on. An empty
// scope is the whole county. The server, not the browser, says who acted
// in what role: a session becomes a Principal (SessionPrincipal) whose
// Access rules are the same as everyone's, and whose writes go through
// the Syncer as the session's own replica.

// Account is an office user.
type Account struct {
	ID    string `json:"id"`
	Login string `json:"login"`
	Name  string `json:"name"`
	// PasswordHash is the argon2id hash in PHC form; never sent.
	PasswordHash string    `json:"-"`
	Roles        []string  `json:"roles"`
	Zones        []string  `json:"zones,omitempty"`
	Schools      []string  `json:"schools,omitempty"`
	Disabled     bool      `json:"disabled,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

// Session is a signed-in browser. Its token is known only to the browser
// (in a cookie); the store keeps its sha256 (ID).
type Session struct {
	ID        string // hex sha256 of the token
	AccountID string
	// Replica is the replica id the session writes with: each session is
	// a replica of its own, like a phone.
	Replica   uuid.UUID
	CSRF      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// AccountStore keeps accounts, sessions and failed sign-ins.
type AccountStore interface {
	// CreateAccount stores a new account: ECONFLICT when the id or the
	// login is taken.
	CreateAccount(ctx context.Context, a Account) error
	// UpdateAccount replaces an existing account (ENOTFOUND).
	UpdateAccount(ctx context.Context, a Account) error
	Account(ctx context.Context, id string) (Account, error)
	AccountByLogin(ctx context.Context, login string) (Account, error)
	CountAccounts(ctx context.Context) (int, error)

	PutSession(ctx context.Context, s Session) error
	// Session returns a session by ID, ENOTFOUND when there is none.
	Session(ctx context.Context, id string) (Session, error)
	DeleteSession(ctx context.Context, id string) error
	// DeleteSessions deletes every session of an account but keep (which
	// may be "").
	DeleteSessions(ctx context.Context, accountID, keep string) error

	// AddLoginFailure notes a failed sign-in under key at a time.
	AddLoginFailure(ctx context.Context, key string, at time.Time) error
	// LoginFailures counts the failures under key since a time.
	LoginFailures(ctx context.Context, key string, since time.Time) (int, error)
	ClearLoginFailures(ctx context.Context, key string) error
}

// Console roles an account can hold.
var AccountRoles = []string{RoleInspector, RoleOfficeReviewer, RoleOfficeHead, RoleAdmin}

// Throttling of sign-ins: at most MaxFailuresPerAccount failed attempts
// on one login and MaxFailuresPerAddress from one address within
// FailureWindow; beyond that every attempt is refused (even with the
// right password) until the window has passed.
const (
	MaxFailuresPerAccount = 5
	MaxFailuresPerAddress = 20
	FailureWindow         = 15 * time.Minute
	// SessionLifetime is how long a session lasts without signing in
	// again.
	SessionLifetime = 12 * time.Hour
	// MinPasswordLength is the shortest password accepted.
	MinPasswordLength = 10
)

// ErrThrottled is returned (wrapped in an EUNAVAILABLE) when sign-ins are
// refused for too many failures.
var ErrThrottled = errors.New("too many failed sign-ins")

// Accounts is the sign-in service.
type Accounts struct {
	Store AccountStore
	Now   func() time.Time
	// Zones, when set, returns the schools of a responsibility zone, for
	// the scope of accounts scoped to zones.
	Zones func(ctx context.Context, zone string) ([]string, error)
}

// NewAccounts returns the service on a store with the real clock.
func NewAccounts(store AccountStore) *Accounts {
	return &Accounts{Store: store, Now: time.Now}
}

// argon2id parameters (OWASP's first recommendation: 19 MiB, 2 passes).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// HashPassword returns the argon2id hash of a password in PHC form.
func HashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches a hash of HashPassword.
func CheckPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 1<<20 || t > 16 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// NewAccount is what Create needs.
type NewAccount struct {
	Login    string   `json:"login"`
	Name     string   `json:"name"`
	Password string   `json:"password"`
	Roles    []string `json:"roles"`
	Zones    []string `json:"zones,omitempty"`
	Schools  []string `json:"schools,omitempty"`
}

// Create makes an account after checking it field by field.
func (a *Accounts) Create(ctx context.Context, in NewAccount) (Account, error) {
	fields := map[string]string{}
	in.Login = strings.TrimSpace(in.Login)
	if in.Login == "" || len(in.Login) > 64 || strings.ContainsAny(in.Login, " \t\r\n/") {
		fields["login"] = "is required: up to 64 characters, no spaces or slashes"
	}
	if strings.TrimSpace(in.Name) == "" || utf8.RuneCountInString(in.Name) > 100 {
		fields["name"] = "is required, up to 100 characters"
	}
	if msg := passwordProblem(in.Password); msg != "" {
		fields["password"] = msg
	}
	if len(in.Roles) == 0 {
		fields["roles"] = "at least one of inspector, office_reviewer, office_head, admin"
	}
	for _, r := range in.Roles {
		if !slices.Contains(AccountRoles, r) {
			fields["roles"] = fmt.Sprintf("%q is not one of inspector, office_reviewer, office_head, admin", r)
		}
	}
	for _, ids := range [][]string{in.Zones, in.Schools} {
		for _, id := range ids {
			if _, err := uuid.Parse(id); err != nil {
				fields["scope"] = fmt.Sprintf("%q is not a zone or school id", id)
			}
		}
	}
	if len(fields) > 0 {
		return Account{}, syncproto.FieldError("The account is not valid.", fields)
	}
	hash, err := HashPassword(in.Password)
	if err != nil {
		return Account{}, err
	}
	acc := Account{
		ID: uuid.Must(uuid.NewV7()).String(), Login: in.Login, Name: strings.TrimSpace(in.Name), PasswordHash: hash,
		Roles: slices.Compact(slices.Sorted(slices.Values(in.Roles))), Zones: in.Zones, Schools: in.Schools,
		CreatedAt: a.Now().UTC().Truncate(time.Millisecond),
	}
	if err := a.Store.CreateAccount(ctx, acc); err != nil {
		return Account{}, err
	}
	return acc, nil
}

func passwordProblem(pw string) string {
	if utf8.RuneCountInString(pw) < MinPasswordLength {
		return fmt.Sprintf("must be at least %d characters", MinPasswordLength)
	}
	if len(pw) > 256 {
		return "must be at most 256 bytes"
	}
	return ""
}

// SignIn checks a login and password from an address and opens a
// session, returning its token (for the cookie) and the session. Wrong
// credentials are EUNAUTHORIZED with one message whichever was wrong;
// too many failures (per login, per address) are EUNAVAILABLE wrapping
// ErrThrottled.
func (a *Accounts) SignIn(ctx context.Context, login, password, addr string) (string, Session, error) {
	now := a.Now().UTC()
	since := now.Add(-FailureWindow)
	loginKey, addrKey := "login:"+strings.ToLower(strings.TrimSpace(login)), "addr:"+addr
	for _, k := range []struct {
		key string
		max int
	}{{loginKey, MaxFailuresPerAccount}, {addrKey, MaxFailuresPerAddress}} {
		n, err := a.Store.LoginFailures(ctx, k.key, since)
		if err != nil {
			return "", Session{}, err
		}
		if n >= k.max {
			return "", Session{}, fmt.Errorf("%w: %w", ErrThrottled, syncproto.Errorf(syncproto.EUNAVAILABLE, "登录失败次数过多，请15分钟后再试。Too many failed sign-ins: try again in 15 minutes."))
		}
	}
	acc, err := a.Store.AccountByLogin(ctx, strings.TrimSpace(login))
	ok := err == nil && !acc.Disabled && CheckPassword(acc.PasswordHash, password)
	if err != nil && syncproto.ErrorCode(err) != syncproto.ENOTFOUND {
		return "", Session{}, err
	}
	if !ok {
		if err != nil {
			// Spend the time a hash takes, so that unknown logins cannot
			// be told from wrong passwords by timing.
			CheckPassword(dummyHash, password)
		}
		for _, k := range []string{loginKey, addrKey} {
			if err := a.Store.AddLoginFailure(ctx, k, now); err != nil {
				return "", Session{}, err
			}
		}
		return "", Session{}, syncproto.Errorf(syncproto.EUNAUTHORIZED, "账号或密码不正确。The login or the password is wrong.")
	}
	if err := a.Store.ClearLoginFailures(ctx, loginKey); err != nil {
		return "", Session{}, err
	}
	return a.open(ctx, acc.ID, now)
}

var dummyHash, _ = HashPassword("not a password of anyone")

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// SessionID returns the stored id of a session token.
func SessionID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func (a *Accounts) open(ctx context.Context, accountID string, now time.Time) (string, Session, error) {
	tok := randomToken()
	s := Session{
		ID: SessionID(tok), AccountID: accountID, Replica: uuid.Must(uuid.NewV7()), CSRF: randomToken(),
		CreatedAt: now.Truncate(time.Millisecond), ExpiresAt: now.Add(SessionLifetime).Truncate(time.Millisecond),
	}
	if err := a.Store.PutSession(ctx, s); err != nil {
		return "", Session{}, err
	}
	return tok, s, nil
}

// Authenticate returns the principal and session of a session token:
// EUNAUTHORIZED when the token is unknown, expired, or its account is
// disabled.
func (a *Accounts) Authenticate(ctx context.Context, token string) (Principal, Session, error) {
	unauth := syncproto.Errorf(syncproto.EUNAUTHORIZED, "请重新登录。Sign in again.")
	if token == "" || len(token) > 100 {
		return Principal{}, Session{}, unauth
	}
	s, err := a.Store.Session(ctx, SessionID(token))
	if syncproto.ErrorCode(err) == syncproto.ENOTFOUND {
		return Principal{}, Session{}, unauth
	}
	if err != nil {
		return Principal{}, Session{}, err
	}
	if !a.Now().Before(s.ExpiresAt) {
		_ = a.Store.DeleteSession(ctx, s.ID)
		return Principal{}, Session{}, unauth
	}
	acc, err := a.Store.Account(ctx, s.AccountID)
	if syncproto.ErrorCode(err) == syncproto.ENOTFOUND || (err == nil && acc.Disabled) {
		return Principal{}, Session{}, unauth
	}
	if err != nil {
		return Principal{}, Session{}, err
	}
	return SessionPrincipal(acc, s), s, nil
}

// SessionPrincipal is who a session acts as: the account's person, roles
// and scope, writing as the session's replica.
func SessionPrincipal(acc Account, s Session) Principal {
	return Principal{
		UserID: acc.ID, Name: acc.Name, Roles: slices.Clone(acc.Roles), Replica: s.Replica, Session: s.ID,
		Zones: slices.Clone(acc.Zones), Schools: slices.Clone(acc.Schools), Scoped: len(acc.Zones)+len(acc.Schools) > 0,
	}
}

// CheckCSRF compares a request's CSRF token with the session's.
func CheckCSRF(s Session, token string) error {
	if token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRF)) != 1 {
		return syncproto.Errorf(syncproto.EFORBIDDEN, "页面已过期，请刷新后重试。The form is stale or forged (CSRF token missing or wrong): reload the page.")
	}
	return nil
}

// SignOut ends one session.
func (a *Accounts) SignOut(ctx context.Context, s Session) error {
	return a.Store.DeleteSession(ctx, s.ID)
}

// SignOutEverywhere ends every session of the account.
func (a *Accounts) SignOutEverywhere(ctx context.Context, accountID string) error {
	return a.Store.DeleteSessions(ctx, accountID, "")
}

// ChangePassword checks the old password, sets the new one and ends
// every other session of the account.
func (a *Accounts) ChangePassword(ctx context.Context, s Session, old, new string) error {
	acc, err := a.Store.Account(ctx, s.AccountID)
	if err != nil {
		return err
	}
	if !CheckPassword(acc.PasswordHash, old) {
		return syncproto.FieldError("原密码不正确。The current password is wrong.", map[string]string{"old": "原密码不正确 (wrong password)"})
	}
	if msg := passwordProblem(new); msg != "" {
		return syncproto.FieldError("新密码不符合要求。The new password is not acceptable.", map[string]string{"new": fmt.Sprintf("至少%d个字符 (%s)", MinPasswordLength, msg)})
	}
	if acc.PasswordHash, err = HashPassword(new); err != nil {
		return err
	}
	if err := a.Store.UpdateAccount(ctx, acc); err != nil {
		return err
	}
	return a.Store.DeleteSessions(ctx, acc.ID, s.ID)
}
