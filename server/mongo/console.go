package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fieldsync/fieldsync/internal/parallel"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// Collections of the office console.
const (
	AccountsCollection      = "accounts"
	SessionsCollection      = "sessions"
	LoginFailuresCollection = "login_failures"
	AuditCollection         = "audit"
	HazardViewCollection    = "hazard_view"
	SchoolViewCollection    = "school_view"
	RecordViewCollection    = "record_view"
	SchoolCountsCollection  = "school_counts"
	AuditPendingCollection  = "audit_pending"
	// AuditHeadCollection holds one document, {_id: "head", seq}: the
	// highest audit entry known to exist, a hint that may lag.
	AuditHeadCollection = "audit_head"
)

var (
	_ server.AccountStore   = (*ConsoleStore)(nil)
	_ server.AuditStore     = (*ConsoleStore)(nil)
	_ server.ReadModelStore = (*ConsoleStore)(nil)
)

// ConsoleStore implements the console's stores: accounts and sessions,
// the audit log, and the read model of hazards and schools.
//
// Collections: accounts {_id, login_key unique}, sessions {_id: token
// hash, account_id}, login_failures {key, at}, audit {_id: seq, key
// unique, record_id}, hazard_view {_id: record id, school_id, zone_id,
// status, severity, deadline…}, school_view {_id, zone_id}. Lookups are
// equalities on top-level fields first (FerretDB pushes only those
// down), then at most one range.
type ConsoleStore struct {
	db *mongo.Database
}

// NewConsoleStore returns a store on db. Call EnsureIndexes once at start.
func NewConsoleStore(db *mongo.Database) *ConsoleStore { return &ConsoleStore{db: db} }

// EnsureIndexes creates the indexes (idempotent).
func (s *ConsoleStore) EnsureIndexes(ctx context.Context) error {
	// One at a time and retried (createIndexes): two processes starting
	// together on FerretDB otherwise get their connections closed.
	for _, ci := range []struct {
		coll   string
		models []mongo.IndexModel
	}{
		{AccountsCollection, []mongo.IndexModel{{Keys: bson.D{{Key: "login_key", Value: 1}}, Options: options.Index().SetUnique(true)}}},
		{SessionsCollection, []mongo.IndexModel{{Keys: bson.D{{Key: "account_id", Value: 1}}}}},
		{LoginFailuresCollection, []mongo.IndexModel{{Keys: bson.D{{Key: "key", Value: 1}, {Key: "at", Value: 1}}}}},
		{AuditCollection, []mongo.IndexModel{
			{Keys: bson.D{{Key: "key", Value: 1}}, Options: options.Index().SetUnique(true)},
			{Keys: bson.D{{Key: "record_id", Value: 1}}},
			{Keys: bson.D{{Key: "actor", Value: 1}}},
			{Keys: bson.D{{Key: "page", Value: 1}}},
		}},
		{HazardViewCollection, []mongo.IndexModel{
			{Keys: bson.D{{Key: "status", Value: 1}, {Key: "reported_at", Value: -1}}},
			{Keys: bson.D{{Key: "school_id", Value: 1}, {Key: "status", Value: 1}}},
			{Keys: bson.D{{Key: "zone_id", Value: 1}, {Key: "status", Value: 1}}},
			{Keys: bson.D{{Key: "severity", Value: 1}, {Key: "status", Value: 1}}},
			{Keys: bson.D{{Key: "reported_at", Value: -1}}},
			{Keys: bson.D{{Key: "reported_month", Value: 1}, {Key: "status", Value: 1}}},
		}},
		{SchoolViewCollection, []mongo.IndexModel{{Keys: bson.D{{Key: "zone_id", Value: 1}}}}},
		{SchoolCountsCollection, []mongo.IndexModel{{Keys: bson.D{{Key: "zone_id", Value: 1}}}}},
		{AuditPendingCollection, []mongo.IndexModel{{Keys: bson.D{{Key: "at", Value: 1}}}}},
		{RecordViewCollection, []mongo.IndexModel{
			{Keys: bson.D{{Key: "review_state", Value: 1}, {Key: "created_at", Value: -1}}},
			{Keys: bson.D{{Key: "school_id", Value: 1}, {Key: "review_state", Value: 1}}},
			{Keys: bson.D{{Key: "kind", Value: 1}, {Key: "review_state", Value: 1}}},
		}},
	} {
		if err := createIndexes(ctx, s.db.Collection(ci.coll), ci.models); err != nil {
			return fmt.Errorf("mongo: indexes of %s: %w", ci.coll, err)
		}
	}
	return nil
}

type accountDoc struct {
	ID           string    `bson:"_id"`
	Login        string    `bson:"login"`
	LoginKey     string    `bson:"login_key"`
	Name         string    `bson:"name"`
	PasswordHash string    `bson:"password_hash"`
	Roles        []string  `bson:"roles"`
	Zones        []string  `bson:"zones,omitempty"`
	Schools      []string  `bson:"schools,omitempty"`
	Disabled     bool      `bson:"disabled"`
	CreatedAt    time.Time `bson:"created_at"`
}

func toAccountDoc(a server.Account) accountDoc {
	return accountDoc{ID: a.ID, Login: a.Login, LoginKey: strings.ToLower(a.Login), Name: a.Name, PasswordHash: a.PasswordHash,
		Roles: a.Roles, Zones: a.Zones, Schools: a.Schools, Disabled: a.Disabled, CreatedAt: a.CreatedAt}
}

func (d accountDoc) account() server.Account {
	return server.Account{ID: d.ID, Login: d.Login, Name: d.Name, PasswordHash: d.PasswordHash, Roles: d.Roles,
		Zones: d.Zones, Schools: d.Schools, Disabled: d.Disabled, CreatedAt: d.CreatedAt}
}

// CreateAccount implements server.AccountStore.
func (s *ConsoleStore) CreateAccount(ctx context.Context, a server.Account) error {
	_, err := s.db.Collection(AccountsCollection).InsertOne(ctx, toAccountDoc(a))
	if mongo.IsDuplicateKeyError(err) {
		return syncproto.FieldError("The login is taken.", map[string]string{"login": "is taken"})
	}
	if err != nil {
		return fmt.Errorf("mongo: create account: %w", err)
	}
	return nil
}

// UpdateAccount implements server.AccountStore.
func (s *ConsoleStore) UpdateAccount(ctx context.Context, a server.Account) error {
	res, err := s.db.Collection(AccountsCollection).ReplaceOne(ctx, bson.D{{Key: "_id", Value: a.ID}}, toAccountDoc(a))
	if err != nil {
		return fmt.Errorf("mongo: update account: %w", err)
	}
	if res.MatchedCount == 0 {
		return syncproto.Errorf(syncproto.ENOTFOUND, "No account %s.", a.ID)
	}
	return nil
}

func (s *ConsoleStore) findAccount(ctx context.Context, filter bson.D, what string) (server.Account, error) {
	var d accountDoc
	err := s.db.Collection(AccountsCollection).FindOne(ctx, filter).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return server.Account{}, syncproto.Errorf(syncproto.ENOTFOUND, "No account %s.", what)
	}
	if err != nil {
		return server.Account{}, fmt.Errorf("mongo: account %s: %w", what, err)
	}
	return d.account(), nil
}

// Account implements server.AccountStore.
func (s *ConsoleStore) Account(ctx context.Context, id string) (server.Account, error) {
	return s.findAccount(ctx, bson.D{{Key: "_id", Value: id}}, id)
}

// AccountByLogin implements server.AccountStore.
func (s *ConsoleStore) AccountByLogin(ctx context.Context, login string) (server.Account, error) {
	return s.findAccount(ctx, bson.D{{Key: "login_key", Value: strings.ToLower(login)}}, login)
}

// CountAccounts implements server.AccountStore.
func (s *ConsoleStore) CountAccounts(ctx context.Context) (int, error) {
	n, err := s.db.Collection(AccountsCollection).CountDocuments(ctx, bson.D{})
	return int(n), err
}

type sessionDoc struct {
	ID        string    `bson:"_id"`
	AccountID string    `bson:"account_id"`
	Replica   string    `bson:"replica"`
	CSRF      string    `bson:"csrf"`
	CreatedAt time.Time `bson:"created_at"`
	ExpiresAt time.Time `bson:"expires_at"`
}

// PutSession implements server.AccountStore.
func (s *ConsoleStore) PutSession(ctx context.Context, ss server.Session) error {
	_, err := s.db.Collection(SessionsCollection).InsertOne(ctx, sessionDoc{ID: ss.ID, AccountID: ss.AccountID, Replica: ss.Replica.String(),
		CSRF: ss.CSRF, CreatedAt: ss.CreatedAt, ExpiresAt: ss.ExpiresAt})
	if err != nil {
		return fmt.Errorf("mongo: put session: %w", err)
	}
	return nil
}

// Session implements server.AccountStore.
func (s *ConsoleStore) Session(ctx context.Context, id string) (server.Session, error) {
	var d sessionDoc
	err := s.db.Collection(SessionsCollection).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return server.Session{}, syncproto.Errorf(syncproto.ENOTFOUND, "No session.")
	}
	if err != nil {
		return server.Session{}, fmt.Errorf("mongo: session: %w", err)
	}
	rep, err := uuid.Parse(d.Replica)
	if err != nil {
		return server.Session{}, fmt.Errorf("mongo: session replica %q: %w", d.Replica, err)
	}
	return server.Session{ID: d.ID, AccountID: d.AccountID, Replica: rep, CSRF: d.CSRF, CreatedAt: d.CreatedAt, ExpiresAt: d.ExpiresAt}, nil
}

// DeleteSession implements server.AccountStore.
func (s *ConsoleStore) DeleteSession(ctx context.Context, id string) error {
	if _, err := s.db.Collection(SessionsCollection).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("mongo: delete session: %w", err)
	}
	return nil
}

// DeleteSessions implements server.AccountStore.
func (s *ConsoleStore) DeleteSessions(ctx context.Context, accountID, keep string) error {
	filter := bson.D{{Key: "account_id", Value: accountID}}
	if keep != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$ne", Value: keep}}})
	}
	if _, err := s.db.Collection(SessionsCollection).DeleteMany(ctx, filter); err != nil {
		return fmt.Errorf("mongo: delete sessions: %w", err)
	}
	return nil
}

// AddLoginFailure implements server.AccountStore.
func (s *ConsoleStore) AddLoginFailure(ctx context.Context, key string, at time.Time) error {
	_, err := s.db.Collection(LoginFailuresCollection).InsertOne(ctx, bson.D{{Key: "_id", Value: uuid.NewString()}, {Key: "key", Value: key}, {Key: "at", Value: at}})
	if err != nil {
		return fmt.Errorf("mongo: login failure: %w", err)
	}
	return nil
}

// LoginFailures implements server.AccountStore.
func (s *ConsoleStore) LoginFailures(ctx context.Context, key string, since time.Time) (int, error) {
	n, err := s.db.Collection(LoginFailuresCollection).CountDocuments(ctx, bson.D{{Key: "key", Value: key}, {Key: "at", Value: bson.D{{Key: "$gt", Value: since}}}})
	if err != nil {
		return 0, fmt.Errorf("mongo: login failures: %w", err)
	}
	return int(n), nil
}

// ClearLoginFailures implements server.AccountStore.
func (s *ConsoleStore) ClearLoginFailures(ctx context.Context, key string) error {
	if _, err := s.db.Collection(LoginFailuresCollection).DeleteMany(ctx, bson.D{{Key: "key", Value: key}}); err != nil {
		return fmt.Errorf("mongo: clear login failures: %w", err)
	}
	return nil
}

type auditDoc struct {
	Seq       int64     `bson:"_id"`
	Key       string    `bson:"key"`
	At        time.Time `bson:"at"`
	Actor     string    `bson:"actor"`
	ActorName string    `bson:"actor_name,omitempty"`
	Role      string    `bson:"role,omitempty"`
	Device    string    `bson:"device,omitempty"`
	Session   string    `bson:"session,omitempty"`
	Action    string    `bson:"action"`
	RecordID  string    `bson:"record_id,omitempty"`
	Kind      string    `bson:"kind,omitempty"`
	Scope     string    `bson:"scope,omitempty"`
	Rev       int64     `bson:"rev,omitempty"`
	Detail    string    `bson:"detail,omitempty"`
	Prev      string    `bson:"prev"`
	Hash      string    `bson:"hash"`
}

func (d auditDoc) entry() server.AuditEntry {
	e := server.AuditEntry(d)
	e.At = e.At.UTC()
	return e
}

// The audit log on FerretDB. FerretDB v1 pushes down only top-level
// equality and sorts in Go after reading everything a filter matches, so
// the chain is read by equality alone: an entry by its sequence number
// (_id), a run of entries by their page (seq / auditPage, like the change
// log's pages), and the last entry from a head document that may lag,
// followed forward entry by entry. On MongoDB the same queries are
// index-backed lookups.

// auditPage is how many consecutive entries share a page number.
const auditPage = 256

// pagedAuditDoc is an entry as stored: auditDoc's fields and its page.
func pagedAuditDoc(e server.AuditEntry) (bson.D, error) {
	raw, err := bson.Marshal(auditDoc(e))
	if err != nil {
		return nil, err
	}
	var d bson.D
	if err := bson.Unmarshal(raw, &d); err != nil {
		return nil, err
	}
	return append(d, bson.E{Key: "page", Value: e.Seq / auditPage}), nil
}

// LastAudit implements server.AuditStore: the head document's entry, then
// the entries after it one lookup at a time (the head lags by the entries
// whose writer stopped before moving it).
func (s *ConsoleStore) LastAudit(ctx context.Context) (server.AuditEntry, bool, error) {
	coll := s.db.Collection(AuditCollection)
	var head struct {
		Seq int64 `bson:"seq"`
	}
	err := s.db.Collection(AuditHeadCollection).FindOne(ctx, bson.D{{Key: "_id", Value: "head"}}).Decode(&head)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return server.AuditEntry{}, false, fmt.Errorf("mongo: audit head: %w", err)
	}
	var last auditDoc
	found := false
	if head.Seq > 0 {
		switch err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: head.Seq}}).Decode(&last); {
		case err == nil:
			found = true
		case !errors.Is(err, mongo.ErrNoDocuments):
			return server.AuditEntry{}, false, fmt.Errorf("mongo: last audit entry: %w", err)
		}
	}
	for n := head.Seq + 1; ; n++ {
		var d auditDoc
		err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: n}}).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			break
		}
		if err != nil {
			return server.AuditEntry{}, false, fmt.Errorf("mongo: last audit entry: %w", err)
		}
		last, found = d, true
	}
	if !found && head.Seq > 0 {
		// The head names an entry that is gone (removed by hand): find
		// the last one the slow way; audit verify names the gap.
		err := coll.FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "_id", Value: -1}})).Decode(&last)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return server.AuditEntry{}, false, nil
		}
		if err != nil {
			return server.AuditEntry{}, false, fmt.Errorf("mongo: last audit entry: %w", err)
		}
		found = true
	}
	if found && last.Seq > head.Seq {
		if err := s.moveAuditHead(ctx, last.Seq); err != nil {
			return server.AuditEntry{}, false, err
		}
	}
	return last.entry(), found, nil
}

// moveAuditHead raises the head to seq; a head already at or past it is
// left as it is.
func (s *ConsoleStore) moveAuditHead(ctx context.Context, seq int64) error {
	_, err := s.db.Collection(AuditHeadCollection).UpdateOne(ctx,
		bson.D{{Key: "_id", Value: "head"}, {Key: "seq", Value: bson.D{{Key: "$lt", Value: seq}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: seq}}}}, options.UpdateOne().SetUpsert(true))
	if err != nil && !mongo.IsDuplicateKeyError(err) { // a head already further: the upsert's insert collides
		return fmt.Errorf("mongo: move audit head: %w", err)
	}
	return nil
}

// InsertAudit implements server.AuditStore: one ordered insert, which
// stops at the first entry whose number or key is taken.
func (s *ConsoleStore) InsertAudit(ctx context.Context, entries []server.AuditEntry) (int, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	docs := make([]any, len(entries))
	for i, e := range entries {
		doc, err := pagedAuditDoc(e)
		if err != nil {
			return 0, fmt.Errorf("mongo: audit entry %d: %w", e.Seq, err)
		}
		docs[i] = doc
	}
	_, err := s.db.Collection(AuditCollection).InsertMany(ctx, docs, options.InsertMany().SetOrdered(true))
	if err != nil {
		var bwe mongo.BulkWriteException
		if errors.As(err, &bwe) && len(bwe.WriteErrors) > 0 && bwe.WriteConcernError == nil {
			first := bwe.WriteErrors[0] // ordered: the insert stopped there
			i := first.Index
			if isDuplicateCode(first.Code) {
				if i > 0 {
					if err := s.moveAuditHead(ctx, entries[i-1].Seq); err != nil {
						return i, err
					}
				}
				return i, syncproto.Errorf(syncproto.ECONFLICT, "audit entry %d or key %s is taken", entries[i].Seq, entries[i].Key)
			}
			return i, fmt.Errorf("mongo: insert audit entry %d: %w", entries[i].Seq, err)
		}
		// Unknown how far it got: the chain's next round reads the last
		// entry again.
		return 0, fmt.Errorf("mongo: insert audit entries: %w", err)
	}
	if err := s.moveAuditHead(ctx, entries[len(entries)-1].Seq); err != nil {
		return len(entries), err
	}
	return len(entries), nil
}

// AuditKeys implements server.AuditStore: one equality lookup per key, a
// few at a time (an $in is not pushed down by FerretDB v1: it would read
// the whole log).
func (s *ConsoleStore) AuditKeys(ctx context.Context, keys []string) (map[string]bool, error) {
	have := make([]bool, len(keys))
	err := parallel.Bounded(len(keys), 8, func(i int) error {
		err := s.db.Collection(AuditCollection).FindOne(ctx, bson.D{{Key: "key", Value: keys[i]}},
			options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
		switch {
		case err == nil:
			have[i] = true
		case !errors.Is(err, mongo.ErrNoDocuments):
			return fmt.Errorf("mongo: audit keys: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(keys))
	for i, k := range keys {
		if have[i] {
			out[k] = true
		}
	}
	return out, nil
}

func (s *ConsoleStore) audits(ctx context.Context, filter bson.D, limit int) ([]server.AuditEntry, error) {
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.db.Collection(AuditCollection).Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("mongo: audit: %w", err)
	}
	var docs []auditDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongo: audit: %w", err)
	}
	out := make([]server.AuditEntry, len(docs))
	for i, d := range docs {
		out[i] = d.entry()
	}
	return out, nil
}

// AuditRange implements server.AuditStore: the entries after after, in
// order, page by page (an equality lookup each) up to the last entry.
func (s *ConsoleStore) AuditRange(ctx context.Context, after int64, limit int) ([]server.AuditEntry, error) {
	last, ok, err := s.LastAudit(ctx)
	if err != nil || !ok || last.Seq <= after {
		return nil, err
	}
	var out []server.AuditEntry
	for p := (after + 1) / auditPage; p <= last.Seq/auditPage && (limit <= 0 || len(out) < limit); p++ {
		page, err := s.audits(ctx, bson.D{{Key: "page", Value: p}}, 0)
		if err != nil {
			return nil, err
		}
		for _, e := range page { // sorted by seq
			if e.Seq > after {
				out = append(out, e)
			}
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

type pendingDoc struct {
	Key   string            `bson:"_id"`
	At    time.Time         `bson:"at"`
	Entry server.AuditEntry `bson:"entry"`
}

// AddPending implements server.AuditStore: one unordered insert, an entry
// already pending (a push retried) left as it is.
func (s *ConsoleStore) AddPending(ctx context.Context, entries []server.AuditEntry) error {
	docs := make([]any, len(entries))
	for i, e := range entries {
		docs[i] = pendingDoc{Key: e.Key, At: e.At, Entry: e}
	}
	_, err := s.db.Collection(AuditPendingCollection).InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err != nil && !onlyDuplicates(err) {
		return fmt.Errorf("mongo: pending audit entries: %w", err)
	}
	return nil
}

// onlyDuplicates reports whether every write error of a bulk insert is a
// duplicate key.
func onlyDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return mongo.IsDuplicateKeyError(err)
	}
	for _, we := range bwe.WriteErrors {
		if !isDuplicateCode(we.Code) {
			return false
		}
	}
	return true
}

// Pending implements server.AuditStore.
func (s *ConsoleStore) Pending(ctx context.Context, limit int) ([]server.AuditEntry, error) {
	opts := options.Find().SetSort(bson.D{{Key: "at", Value: 1}, {Key: "_id", Value: 1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.db.Collection(AuditPendingCollection).Find(ctx, bson.D{}, opts)
	if err != nil {
		return nil, fmt.Errorf("mongo: pending audit entries: %w", err)
	}
	var docs []pendingDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongo: pending audit entries: %w", err)
	}
	out := make([]server.AuditEntry, len(docs))
	for i, d := range docs {
		out[i] = d.Entry
		out[i].At = out[i].At.UTC()
	}
	return out, nil
}

// DeletePending implements server.AuditStore.
func (s *ConsoleStore) DeletePending(ctx context.Context, keys []string) error {
	_, err := s.db.Collection(AuditPendingCollection).DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}})
	if err != nil {
		return fmt.Errorf("mongo: delete pending audit entries: %w", err)
	}
	return nil
}

// AuditBy implements server.AuditStore.
func (s *ConsoleStore) AuditBy(ctx context.Context, actor string, limit int) ([]server.AuditEntry, error) {
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: -1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.db.Collection(AuditCollection).Find(ctx, bson.D{{Key: "actor", Value: actor}}, opts)
	if err != nil {
		return nil, fmt.Errorf("mongo: audit of %s: %w", actor, err)
	}
	var docs []auditDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongo: audit of %s: %w", actor, err)
	}
	out := make([]server.AuditEntry, len(docs))
	for i, d := range docs {
		out[i] = d.entry()
	}
	return out, nil
}

// AuditOf implements server.AuditStore.
func (s *ConsoleStore) AuditOf(ctx context.Context, recordID string) ([]server.AuditEntry, error) {
	return s.audits(ctx, bson.D{{Key: "record_id", Value: recordID}}, 0)
}

type hazardDoc struct {
	ID           string    `bson:"_id"`
	SchoolID     string    `bson:"school_id"`
	ZoneID       string    `bson:"zone_id"`
	Title        string    `bson:"title"`
	Category     string    `bson:"category,omitempty"`
	Severity     string    `bson:"severity"`
	SeverityRank int       `bson:"severity_rank"`
	Status       string    `bson:"status"`
	Deadline     string    `bson:"deadline"`
	NeedsReview  bool      `bson:"needs_review"`
	Author       string    `bson:"author,omitempty"`
	ReportedAt   time.Time `bson:"reported_at"`
	UpdatedAt    time.Time `bson:"updated_at"`
	Photos       int       `bson:"photos"`
	Events       int       `bson:"events"`
	Rev          int64     `bson:"rev"`
	// ReportedMonth (YYYY-MM in China) lets the newest-first queue read
	// one month at a time with an equality, instead of sorting the whole
	// collection (FerretDB sorts what the filter returns, in memory).
	ReportedMonth string `bson:"reported_month"`
}

// PutHazard implements server.ReadModelStore: a replace of the row whose
// rev is lower, or an insert; a duplicate means a newer row is stored.
func (s *ConsoleStore) PutHazard(ctx context.Context, h server.HazardRow) error {
	doc := hazardDoc{h.ID, h.SchoolID, h.ZoneID, h.Title, h.Category, h.Severity, h.SeverityRank, h.Status, h.Deadline,
		h.NeedsReview, h.Author, h.ReportedAt, h.UpdatedAt, h.Photos, h.Events, h.Rev, ReportedMonth(h.ReportedAt)}
	_, err := s.db.Collection(HazardViewCollection).ReplaceOne(ctx,
		bson.D{{Key: "_id", Value: h.ID}, {Key: "rev", Value: bson.D{{Key: "$lte", Value: h.Rev}}}}, doc, options.Replace().SetUpsert(true))
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("mongo: put hazard row: %w", err)
	}
	return nil
}

// PutSchool implements server.ReadModelStore.
func (s *ConsoleStore) PutSchool(ctx context.Context, r server.SchoolRow) error {
	_, err := s.db.Collection(SchoolViewCollection).ReplaceOne(ctx, bson.D{{Key: "_id", Value: r.ID}},
		bson.D{{Key: "_id", Value: r.ID}, {Key: "name", Value: r.Name}, {Key: "zone_id", Value: r.ZoneID}}, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("mongo: put school row: %w", err)
	}
	return nil
}

// Hazard implements server.ReadModelStore.
func (s *ConsoleStore) Hazard(ctx context.Context, id string) (server.HazardRow, error) {
	var d hazardDoc
	err := s.db.Collection(HazardViewCollection).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return server.HazardRow{}, syncproto.Errorf(syncproto.ENOTFOUND, "没有该隐患。No hazard %s.", id)
	}
	if err != nil {
		return server.HazardRow{}, fmt.Errorf("mongo: hazard row: %w", err)
	}
	return d.row(), nil
}

func (d hazardDoc) row() server.HazardRow {
	r := server.HazardRow{ID: d.ID, SchoolID: d.SchoolID, ZoneID: d.ZoneID, Title: d.Title, Category: d.Category, Severity: d.Severity,
		SeverityRank: d.SeverityRank, Status: d.Status, Deadline: d.Deadline, NeedsReview: d.NeedsReview, Author: d.Author,
		ReportedAt: d.ReportedAt, UpdatedAt: d.UpdatedAt, Photos: d.Photos, Events: d.Events, Rev: d.Rev}
	r.ReportedAt, r.UpdatedAt = r.ReportedAt.UTC(), r.UpdatedAt.UTC()
	return r
}

// hazardFilter builds the query: equalities first, then the scope and
// the overdue range.
func hazardFilter(f server.HazardFilter, withStatus bool) bson.D {
	q := bson.D{}
	eq := func(k, v string) {
		if v != "" {
			q = append(q, bson.E{Key: k, Value: v})
		}
	}
	eq("zone_id", f.Zone)
	eq("school_id", f.School)
	eq("severity", f.Severity)
	if withStatus {
		switch {
		case f.Overdue && f.Status != "":
			eq("status", f.Status)
			q = append(q, bson.E{Key: "deadline", Value: bson.D{{Key: "$lt", Value: f.Today}, {Key: "$gt", Value: ""}}})
		case f.Overdue:
			q = append(q, bson.E{Key: "status", Value: bson.D{{Key: "$in", Value: server.OverdueStatuses()}}},
				bson.E{Key: "deadline", Value: bson.D{{Key: "$lt", Value: f.Today}, {Key: "$gt", Value: ""}}})
		default:
			eq("status", f.Status)
		}
	}
	if !f.AllSchools && f.School == "" {
		schools := f.Schools
		if schools == nil {
			schools = []string{}
		}
		q = append(q, bson.E{Key: "school_id", Value: bson.D{{Key: "$in", Value: schools}}})
	} else if !f.AllSchools {
		ok := false
		for _, id := range f.Schools {
			ok = ok || id == f.School
		}
		if !ok {
			q = append(q, bson.E{Key: "school_id", Value: bson.D{{Key: "$in", Value: []string{}}}})
		}
	}
	return q
}

// ReportedMonth is the month bucket of a report time: YYYY-MM in China.
func ReportedMonth(t time.Time) string { return t.In(syncproto.ChinaTime).Format("2006-01") }

// monthsBack bounds how far back the month-by-month reading of a broad
// newest-first queue goes (five years); older hazards are found with a
// school or a status filter.
const monthsBack = 60

// Hazards implements server.ReadModelStore. A narrow filter (a school) is
// one query. A broad newest-first one reads month by month, newest first,
// each month an equality (and for overdue one equality per status that
// can be overdue), until the page is full: FerretDB then sorts a month's
// rows, never the whole collection.
func (s *ConsoleStore) Hazards(ctx context.Context, f server.HazardFilter) ([]server.HazardRow, error) {
	limit := f.Limit
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	if f.Sort == "urgent" || f.School != "" {
		sort := bson.D{{Key: "reported_at", Value: -1}, {Key: "_id", Value: 1}}
		if f.Sort == "urgent" {
			sort = bson.D{{Key: "severity_rank", Value: -1}, {Key: "deadline", Value: 1}, {Key: "_id", Value: 1}}
		}
		return s.findHazards(ctx, hazardFilter(f, true), sort, limit)
	}
	statuses := []string{f.Status}
	if f.Overdue && f.Status == "" {
		statuses = server.OverdueStatuses()
	}
	now := time.Now()
	if f.Today != "" {
		if t, err := time.ParseInLocation(time.DateOnly, f.Today, syncproto.ChinaTime); err == nil {
			now = t
		}
	}
	var out []server.HazardRow
	for m := -1; m < monthsBack && len(out) < limit; m++ { // from next month: phone clocks run ahead
		month := ReportedMonth(time.Date(now.Year(), now.Month()-time.Month(m), 1, 12, 0, 0, 0, syncproto.ChinaTime))
		var rows []server.HazardRow
		for _, st := range statuses {
			g := f
			g.Status, g.Overdue = st, f.Overdue
			q := append(bson.D{{Key: "reported_month", Value: month}}, hazardFilter(g, true)...)
			got, err := s.findHazards(ctx, q, bson.D{{Key: "reported_at", Value: -1}, {Key: "_id", Value: 1}}, limit-len(out))
			if err != nil {
				return nil, err
			}
			rows = append(rows, got...)
		}
		slices.SortFunc(rows, func(a, b server.HazardRow) int {
			if c := b.ReportedAt.Compare(a.ReportedAt); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		out = append(out, rows[:min(len(rows), limit-len(out))]...)
	}
	return out, nil
}

func (s *ConsoleStore) findHazards(ctx context.Context, q, sort bson.D, limit int) ([]server.HazardRow, error) {
	cur, err := s.db.Collection(HazardViewCollection).Find(ctx, q, options.Find().SetSort(sort).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("mongo: hazards: %w", err)
	}
	var docs []hazardDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongo: hazards: %w", err)
	}
	out := make([]server.HazardRow, len(docs))
	for i, d := range docs {
		out[i] = d.row()
	}
	return out, nil
}

// schoolCounts is the count document of one school: hazards by status
// and severity, and, for the statuses that can be overdue, by severity
// and deadline (overdue depends on the day the page is read).
type schoolCounts struct {
	ID     string                    `bson:"_id"`
	ZoneID string                    `bson:"zone_id"`
	Counts map[string]map[string]int `bson:"counts"` // status → severity → n
	Due    map[string]map[string]int `bson:"due"`    // severity → deadline → n
	_      struct{}                  `bson:"-"`
}

// RecountSchools implements server.ReadModelStore: each school's count
// document is recomputed from its rows (an equality on school_id) and
// replaced, so a count is never incremented: FerretDB's updates are not
// atomic, and a lost increment would stay wrong forever, while a
// recount lost to a race is repaired by the school's next change or by
// a rebuild.
func (s *ConsoleStore) RecountSchools(ctx context.Context, schools []string) error {
	for _, school := range schools {
		cur, err := s.db.Collection(HazardViewCollection).Find(ctx, bson.D{{Key: "school_id", Value: school}},
			options.Find().SetProjection(bson.D{{Key: "status", Value: 1}, {Key: "severity", Value: 1}, {Key: "deadline", Value: 1}, {Key: "zone_id", Value: 1}}))
		if err != nil {
			return fmt.Errorf("mongo: recount %s: %w", school, err)
		}
		var rows []struct {
			Status   string `bson:"status"`
			Severity string `bson:"severity"`
			Deadline string `bson:"deadline"`
			ZoneID   string `bson:"zone_id"`
		}
		if err := cur.All(ctx, &rows); err != nil {
			return fmt.Errorf("mongo: recount %s: %w", school, err)
		}
		doc := schoolCounts{ID: school, Counts: map[string]map[string]int{}, Due: map[string]map[string]int{}}
		due := server.OverdueStatuses()
		for _, r := range rows {
			doc.ZoneID = r.ZoneID
			sev := r.Severity
			if sev == "" {
				sev = "none"
			}
			if doc.Counts[r.Status] == nil {
				doc.Counts[r.Status] = map[string]int{}
			}
			doc.Counts[r.Status][sev]++
			if r.Deadline != "" && slices.Contains(due, r.Status) {
				if doc.Due[sev] == nil {
					doc.Due[sev] = map[string]int{}
				}
				doc.Due[sev][r.Deadline]++
			}
		}
		_, err = s.db.Collection(SchoolCountsCollection).ReplaceOne(ctx, bson.D{{Key: "_id", Value: school}}, doc, options.Replace().SetUpsert(true))
		if err != nil {
			return fmt.Errorf("mongo: recount %s: %w", school, err)
		}
	}
	return nil
}

// HazardCounts implements server.ReadModelStore from the schools' count
// documents (one per school in the filter), not from the rows.
func (s *ConsoleStore) HazardCounts(ctx context.Context, f server.HazardFilter) (map[string]int, error) {
	q := bson.D{}
	if f.Zone != "" {
		q = append(q, bson.E{Key: "zone_id", Value: f.Zone})
	}
	switch {
	case f.School != "" && (f.AllSchools || slices.Contains(f.Schools, f.School)):
		q = append(q, bson.E{Key: "_id", Value: f.School})
	case f.School != "":
		return map[string]int{"overdue": 0}, nil
	case !f.AllSchools:
		schools := f.Schools
		if schools == nil {
			schools = []string{}
		}
		q = append(q, bson.E{Key: "_id", Value: bson.D{{Key: "$in", Value: schools}}})
	}
	cur, err := s.db.Collection(SchoolCountsCollection).Find(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("mongo: hazard counts: %w", err)
	}
	var docs []schoolCounts
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongo: hazard counts: %w", err)
	}
	out := map[string]int{"overdue": 0}
	for _, d := range docs {
		for status, bySev := range d.Counts {
			for sev, n := range bySev {
				if f.Severity == "" || f.Severity == sev {
					out[status] += n
				}
			}
		}
		for sev, byDay := range d.Due {
			if f.Severity != "" && f.Severity != sev {
				continue
			}
			for day, n := range byDay {
				if day < f.Today {
					out["overdue"] += n
				}
			}
		}
	}
	return out, nil
}

// Schools implements server.ReadModelStore.
func (s *ConsoleStore) Schools(ctx context.Context) ([]server.SchoolRow, error) {
	cur, err := s.db.Collection(SchoolViewCollection).Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "name", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("mongo: schools: %w", err)
	}
	var docs []struct {
		ID     string `bson:"_id"`
		Name   string `bson:"name"`
		ZoneID string `bson:"zone_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongo: schools: %w", err)
	}
	out := make([]server.SchoolRow, len(docs))
	for i, d := range docs {
		out[i] = server.SchoolRow{ID: d.ID, Name: d.Name, ZoneID: d.ZoneID}
	}
	return out, nil
}

// ZoneSchools implements server.ReadModelStore.
func (s *ConsoleStore) ZoneSchools(ctx context.Context, zone string) ([]string, error) {
	cur, err := s.db.Collection(SchoolViewCollection).Find(ctx, bson.D{{Key: "zone_id", Value: zone}}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("mongo: zone schools: %w", err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongo: zone schools: %w", err)
	}
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.ID
	}
	return out, nil
}

// Database returns the store's database (tests tamper with it).
func (s *ConsoleStore) Database() *mongo.Database { return s.db }

type recordDoc struct {
	ID          string    `bson:"_id"`
	Kind        string    `bson:"kind"`
	SchoolID    string    `bson:"school_id"`
	ZoneID      string    `bson:"zone_id"`
	Title       string    `bson:"title"`
	Author      string    `bson:"author,omitempty"`
	CreatedAt   time.Time `bson:"created_at"`
	ReviewState string    `bson:"review_state"`
	Rev         int64     `bson:"rev"`
}

// PutRecord implements server.ReadModelStore, as PutHazard.
func (s *ConsoleStore) PutRecord(ctx context.Context, r server.RecordRow) error {
	_, err := s.db.Collection(RecordViewCollection).ReplaceOne(ctx,
		bson.D{{Key: "_id", Value: r.ID}, {Key: "rev", Value: bson.D{{Key: "$lte", Value: r.Rev}}}}, recordDoc(r), options.Replace().SetUpsert(true))
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("mongo: put record row: %w", err)
	}
	return nil
}

// Records implements server.ReadModelStore.
func (s *ConsoleStore) Records(ctx context.Context, f server.RecordFilter) ([]server.RecordRow, error) {
	q := bson.D{}
	if f.ReviewState != "" {
		q = append(q, bson.E{Key: "review_state", Value: f.ReviewState})
	}
	if f.Kind != "" {
		q = append(q, bson.E{Key: "kind", Value: f.Kind})
	}
	if f.School != "" {
		q = append(q, bson.E{Key: "school_id", Value: f.School})
	}
	if !f.AllSchools {
		schools := f.Schools
		if schools == nil {
			schools = []string{}
		}
		q = append(q, bson.E{Key: "school_id", Value: bson.D{{Key: "$in", Value: schools}}})
	}
	limit := f.Limit
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	cur, err := s.db.Collection(RecordViewCollection).Find(ctx, q, options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("mongo: records: %w", err)
	}
	var docs []recordDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongo: records: %w", err)
	}
	out := make([]server.RecordRow, len(docs))
	for i, d := range docs {
		out[i] = server.RecordRow(d)
		out[i].CreatedAt = out[i].CreatedAt.UTC()
	}
	return out, nil
}
