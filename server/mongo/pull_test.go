package mongo_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// TestPullManySchools pulls a phone that sees more schools than the store
// reads counters of one by one (PlanPull then reads them all at once),
// page by page, with a dead writer's hole in one school: every record
// arrives exactly once, the record behind the hole only after the lease,
// and a record written after the phone caught up arrives on the next pull.
func TestPullManySchools(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int
	}{
		{"pages of 1", 1},
		{"pages of 7", 7},
		{"one page", 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			ctx := t.Context()
			schools := make([]string, 40)
			for i := range schools {
				schools[i] = uuid.Must(uuid.NewV7()).String()
			}
			sy := server.NewSyncer(env.Store, uuid.New())
			sy.Now = env.Clock.Now
			sy.Access.Assigned = func(context.Context, string) ([]string, error) { return schools, nil }
			dev := uuid.New()
			p := server.Principal{DeviceID: dev, UserID: "u1", InspectorID: "i1", Roles: []string{server.RoleInspector}, Replica: dev}
			write := func(school string) uuid.UUID {
				w := &syncproto.Writer{Replica: syncproto.ReplicaID(dev), Author: "u1", Now: env.Clock.Now()}
				r, _ := syncproto.Set(&syncproto.Record{ID: uuid.Must(uuid.NewV7()), Kind: "visit", SchoolID: school}, "note", json.RawMessage(`"巡查"`), w)
				r.Rev = 1
				if _, err := env.Store.Insert(ctx, []*syncproto.Record{r}); err != nil {
					t.Fatal(err)
				}
				return r.ID
			}
			want := map[uuid.UUID]bool{}
			for i, sc := range schools {
				for range i % 3 { // a third of the schools hold nothing
					want[write(sc)] = true
				}
			}
			// A writer of school 5 allocated a slot and died; the record
			// written after it waits for the lease.
			if err := env.Reserve(ctx, env.Store, schools[5], 1); err != nil {
				t.Fatal(err)
			}
			behind := write(schools[5])

			got := map[uuid.UUID]int{}
			cursor := ""
			catchUp := func() {
				for range 1000 {
					cur, err := syncproto.DecodeCursor(cursor)
					if err != nil {
						t.Fatal(err)
					}
					resp, err := sy.Pull(ctx, p, syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Limit: tc.limit}, cur)
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range resp.Records {
						got[r.ID]++
					}
					cursor = resp.Cursor
					if !resp.More {
						return
					}
				}
				t.Fatal("the pull never ended")
			}
			catchUp()
			for id := range want {
				if got[id] != 1 {
					t.Errorf("record %s pulled %d times, want once", id, got[id])
				}
			}
			if got[behind] != 0 {
				t.Fatalf("the record behind a live hole was pulled before the lease")
			}
			env.Clock.Advance(env.Lease + time.Second)
			late := write(schools[39])
			catchUp()
			if got[behind] != 1 || got[late] != 1 {
				t.Errorf("after the lease: record behind the hole pulled %d times, record written later %d times; want 1 and 1", got[behind], got[late])
			}
			if len(got) != len(want)+2 {
				t.Errorf("pulled %d records, want %d", len(got), len(want)+2)
			}
		})
	}
}
