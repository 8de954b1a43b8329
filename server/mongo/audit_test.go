package mongo_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server"
	servermongo "github.com/fieldsync/fieldsync/server/mongo"
)

// TestAuditByEquality checks the audit log's reads that FerretDB serves by
// equality alone: the last entry from a head that lags or is gone, a range
// across pages, and keys looked up one by one — against the entries the
// test wrote.
func TestAuditByEquality(t *testing.T) {
	db := testenv.Mongo(t)
	store := servermongo.NewConsoleStore(db.Database())
	ctx := t.Context()
	if err := store.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	audit := &server.Audit{Store: store, Now: func() time.Time { return time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC) }}
	const n = 600 // more than two pages of 256
	for i := 0; i < n; i += 50 {
		var batch []server.AuditEntry
		for j := i; j < i+50; j++ {
			batch = append(batch, server.AuditEntry{Key: fmt.Sprintf("change/%d", j), Actor: "user-chen", Action: "change", Detail: fmt.Sprint(j)})
		}
		if err := audit.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	heads := db.Database().Collection(servermongo.AuditHeadCollection)

	t.Run("Last", func(t *testing.T) {
		for _, tt := range []struct {
			name  string
			setup func() error
		}{
			{"HeadCurrent", func() error { return nil }},
			{"HeadLags", func() error {
				_, err := heads.UpdateOne(ctx, bson.D{{Key: "_id", Value: "head"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: int64(17)}}}})
				return err
			}},
			{"HeadGone", func() error {
				_, err := heads.DeleteOne(ctx, bson.D{{Key: "_id", Value: "head"}})
				return err
			}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				if err := tt.setup(); err != nil {
					t.Fatal(err)
				}
				last, ok, err := store.LastAudit(ctx)
				if err != nil || !ok || last.Seq != n || last.Key != fmt.Sprintf("change/%d", n-1) {
					t.Fatalf("LastAudit = seq %d key %q, %v, %v; want seq %d", last.Seq, last.Key, ok, err, n)
				}
				var head struct {
					Seq int64 `bson:"seq"`
				}
				if err := heads.FindOne(ctx, bson.D{{Key: "_id", Value: "head"}}).Decode(&head); err != nil || head.Seq != n {
					t.Errorf("head after LastAudit: %d, %v; want %d", head.Seq, err, n)
				}
			})
		}
	})

	t.Run("Range", func(t *testing.T) {
		for _, tt := range []struct {
			after       int64
			limit       int
			first, last int64 // 0, 0: none
		}{
			{0, 10, 1, 10},
			{250, 20, 251, 270}, // across the first page boundary
			{300, 1000, 301, n},
			{n - 1, 5, n, n},
			{n, 5, 0, 0},
		} {
			got, err := store.AuditRange(ctx, tt.after, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if tt.first == 0 {
				if len(got) != 0 {
					t.Errorf("after %d: %d entries, want none", tt.after, len(got))
				}
				continue
			}
			if int64(len(got)) != tt.last-tt.first+1 || got[0].Seq != tt.first || got[len(got)-1].Seq != tt.last {
				t.Errorf("after %d limit %d: %d entries from %d, want %d..%d", tt.after, tt.limit, len(got), got[0].Seq, tt.first, tt.last)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Seq != got[i-1].Seq+1 {
					t.Fatalf("after %d: entry %d follows %d", tt.after, got[i].Seq, got[i-1].Seq)
				}
			}
		}
	})

	t.Run("Keys", func(t *testing.T) {
		keys := []string{"change/0", "change/599", "change/600", "nope"}
		got, err := store.AuditKeys(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{"change/0": true, "change/599": true}
		if len(got) != len(want) || !got["change/0"] || !got["change/599"] {
			t.Errorf("AuditKeys = %v, want %v", got, want)
		}
	})

	t.Run("TwoWriters", func(t *testing.T) {
		// Two processes chain at once: they race for entry numbers, the
		// loser's ordered insert stops at the taken one and it goes again.
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for w := range 2 {
			other := &server.Audit{Store: servermongo.NewConsoleStore(db.Database()), Now: audit.Now}
			wg.Go(func() {
				for b := range 5 {
					var batch []server.AuditEntry
					for j := range 20 {
						batch = append(batch, server.AuditEntry{Key: fmt.Sprintf("race/%d/%d/%d", w, b, j), Actor: "user-li", Action: "change"})
					}
					if err := other.Append(ctx, batch); err != nil {
						errs[w] = err
						return
					}
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("Verify", func(t *testing.T) {
		rep, err := audit.Verify(ctx)
		if err != nil || !rep.OK || rep.Checked != n+200 {
			t.Fatalf("Verify = %+v, %v; want %d entries checked", rep, err, n+200)
		}
	})
}
