package mongo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server"
	servermongo "github.com/fieldsync/fieldsync/server/mongo"
	"github.com/fieldsync/fieldsync/syncproto"
)

// BenchmarkSyncEngine measures the sync engine against the raw driver on
// the same server, in the same run, and prints a table (make bench runs
// it with the other benchmarks; alone, on the test stack):
//
//	deploy/stack.sh exec -- go test ./server/mongo -run '^$' -bench SyncEngine -timeout 60m
//
// One run takes minutes, so the benchmark body runs once whatever b.N is.
// FIELDSYNC_BENCH_RECORDS (default 100000) records are stored first,
// spread over FIELDSYNC_BENCH_SCHOOLS (default 20) schools, through the
// sync service in batches of 500. Then:
//   - push: more batches of 500 new records through Syncer.Push, each
//     followed by a raw InsertMany of the very documents the push wrote
//     (read back from the log) into a plain copy of the log;
//   - pull: a phone entitled to every school catches up on everything with
//     Syncer.Pull (pages of 1000), against a raw read of every document of
//     every log collection;
//   - latency: the median Pull call of that catch-up, against the same
//     with FIELDSYNC_BENCH_SMALL (default 10000) records stored; and the
//     median push of one edit of a record at its fourth revision, with
//     both amounts stored (the cost per edit must stay flat).
func BenchmarkSyncEngine(b *testing.B) {
	benchOnce.Do(func() { syncEngine(b) })
}

var benchOnce sync.Once

func syncEngine(t testing.TB) {
	records := envInt("FIELDSYNC_BENCH_RECORDS", 100000)
	small := envInt("FIELDSYNC_BENCH_SMALL", 10000)
	schools := envInt("FIELDSYNC_BENCH_SCHOOLS", 20)
	rounds := envInt("FIELDSYNC_BENCH_PUSH_BATCHES", 10)

	big := newBench(t, "big", records, schools)
	smallRun := newBench(t, "small", small, schools)

	pullRate, rawRead, catchUp := big.pull(t)
	p50Big, p50Small := big.probe(t, 60), smallRun.probe(t, 60)
	editBig, editSmall := big.editProbe(t, 40), smallRun.editProbe(t, 40)
	big.copyRaw(t)
	pushRate, rawPushRate, rawIdxRate, decodeRate := big.push(t, rounds)
	idleBig := big.idlePull(t)

	w := os.Stdout
	fmt.Fprintf(w, "\nfieldsync sync engine benchmark: %d records stored in %d schools, %d B of JSON per record state\n",
		records, schools, big.stateBytes)
	fmt.Fprintf(w, "%-58s %12s %12s %8s %6s\n", "measure", "fieldsync", "raw driver", "ratio", "goal")
	fmt.Fprintf(w, "%-58s %12.0f %12.0f %8.2f %6s\n", "push, batches of 500 new records (records/s)", pushRate, rawPushRate, pushRate/rawPushRate, "≥0.7")
	fmt.Fprintf(w, "%-58s %12s %12.0f %8.2f %6s\n", "  raw insert into a collection with the log's 4 indexes", "", rawIdxRate, pushRate/rawIdxRate, "")
	fmt.Fprintf(w, "%-58s %12.0f %12s %8s %6s\n", "  push incl. syncproto.DecodePush of the body (records/s)", decodeRate, "", "", "")
	fmt.Fprintf(w, "%-58s %12.0f %12.0f %8.2f %6s\n", "pull, catch up on everything, pages of 1000 (records/s)", pullRate, rawRead, pullRate/rawRead, "≥0.5")
	fmt.Fprintf(w, "%-58s %12s %12s %8.2f %6s\n", fmt.Sprintf("p50 pull of 100: %d stored %.1f ms / %d stored %.1f ms", records, ms(p50Big), small, ms(p50Small)), "", "", float64(p50Big)/float64(p50Small), "≤2")
	fmt.Fprintf(w, "%-58s %12s %12s %8.2f %6s\n", fmt.Sprintf("p50 edit, 4th revision: %d stored %.1f ms / %d stored %.1f ms", records, ms(editBig), small, ms(editSmall)), "", "", float64(editBig)/float64(editSmall), "≤1.3")
	fmt.Fprintf(w, "%-58s %12.0f %12s %8s %6s\n", fmt.Sprintf("p50 pull of 1000 while catching up, %d stored (ms)", records), ms(catchUp), "", "", "")
	fmt.Fprintf(w, "%-58s %12.0f %12s %8s %6s\n", fmt.Sprintf("pull when up to date, %d schools (ms)", schools), ms(idleBig), "", "", "")
	fmt.Fprintf(w, "%-58s %12.0f %12s %8s %6s\n", "initial load through Syncer.Push (records/s)", big.loadRate, "", "", "")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil && v > 0 {
		return v
	}
	return def
}

type bench struct {
	db         *mongo.Database
	store      *servermongo.SyncStore
	sy         *server.Syncer
	schools    []string
	phone      server.Principal
	rng        *rand.Rand
	ids        []uuid.UUID // of the records stored, with their schools
	idSchool   []string
	stateBytes int
	loadRate   float64
}

func newBench(t testing.TB, name string, records, schools int) *bench {
	t.Helper()
	db, err := servermongo.Open(t.Context(), testenv.MongoURI(t), testenv.Name(t, 40)+"_"+name, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = db.Database().Drop(ctx)
		_ = db.Close(ctx)
	})
	b := &bench{db: db.Database(), store: servermongo.NewSyncStore(db.Database()), rng: rand.New(rand.NewPCG(1, uint64(records)))}
	if err := b.store.EnsureIndexes(t.Context()); err != nil {
		t.Fatal(err)
	}
	b.sy = server.NewSyncer(b.store, uuid.New())
	b.sy.Access.Assigned = func(context.Context, string) ([]string, error) { return b.schools, nil }
	for range schools {
		b.schools = append(b.schools, uuid.Must(uuid.NewV7()).String())
	}
	dev := uuid.New()
	b.phone = server.Principal{DeviceID: dev, UserID: "0192b000-0000-7000-8000-000000000211", InspectorID: "0192b000-0000-7000-8000-000000000201", Roles: []string{server.RoleInspector}, Replica: dev}
	start := time.Now()
	for done := 0; done < records; {
		n := min(500, records-done)
		b.pushBatch(t, b.batch(n, b.schools[(done/500)%len(b.schools)]))
		done += n
	}
	b.loadRate = float64(records) / time.Since(start).Seconds()
	t.Logf("%s: loaded %d records in %v (%.0f/s)", name, records, time.Since(start), b.loadRate)
	return b
}

// visit returns a new record of the size of a routine visit's summary:
// eleven fields of text, dates and a checklist, about 1.5 KB of JSON.
func (b *bench) visit(school string) *syncproto.Record {
	dev := b.phone.DeviceID
	now := time.Now().UTC()
	id := uuid.Must(uuid.NewV7())
	r := &syncproto.Record{ID: id, Kind: "visit", SchoolID: school, CreatedAt: now.Truncate(time.Second), CreatedBy: "0192b000-0000-7000-8000-000000000211", Fields: map[string]syncproto.Field{}}
	clock := syncproto.HLC{}
	set := func(k string, v any) {
		raw, _ := json.Marshal(v)
		c, _ := syncproto.CanonicalJSON(raw)
		clock = clock.Next(dev, now)
		r.Fields[k] = syncproto.Field{{Value: c, Vector: syncproto.Vector{}.Update(dev, now), HLC: clock, Author: r.CreatedBy}}
	}
	set("theme", "10月主题：宿舍消防安全与课业负担")
	set("visit_date", "2024-10-15")
	set("check_in_at", "2024-10-15T07:58:00+08:00")
	set("check_out_at", "2024-10-15T16:10:00+08:00")
	set("kind", "routine")
	set("summary", "早读秩序良好，7名学生迟到，班主任已登记；宿舍楼2楼灭火器过期，已当场要求更换。"+strconv.Itoa(b.rng.IntN(1e6)))
	set("steps", []map[string]any{{"step": "check_in", "done": true}, {"step": "campus_patrol", "done": true}, {"step": "briefing", "done": true}})
	set("score", b.rng.IntN(100))
	set("geo", map[string]any{"lat": 30.7797, "lng": 115.397, "accuracy_m": 35})
	set("feedback_to", "何志远校长")
	set("status", "completed")
	return r
}

func (b *bench) batch(n int, school string) syncproto.PushRequest {
	req := syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: b.phone.DeviceID, BatchID: uuid.Must(uuid.NewV7())}
	for range n {
		req.Changes = append(req.Changes, syncproto.Change{OpID: uuid.Must(uuid.NewV7()), Record: b.visit(school)})
	}
	if b.stateBytes == 0 {
		js, _ := syncproto.Marshal(req.Changes[0].Record)
		b.stateBytes = len(js)
	}
	return req
}

func (b *bench) pushBatch(t testing.TB, req syncproto.PushRequest) {
	t.Helper()
	resp, err := b.sy.Push(t.Context(), b.phone, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range resp.Results {
		if r.Status != syncproto.StatusApplied {
			t.Fatalf("bench push: %s %+v", r.Status, r.Error)
		}
		b.ids = append(b.ids, req.Changes[i].Record.ID)
		b.idSchool = append(b.idSchool, req.Changes[i].Record.SchoolID)
	}
}

// editProbe returns the median latency of a push of one edit of a stored
// record, the slow path (read the current state, decide, insert the next
// revision): n records, each edited three times before the timed edit,
// so that each holds four revisions.
func (b *bench) editProbe(t testing.TB, n int) time.Duration {
	t.Helper()
	var lat []time.Duration
	for i := range n {
		k := b.rng.IntN(len(b.ids))
		id, school := b.ids[k], b.idSchool[k]
		for e := range 4 {
			cur, err := b.sy.Record(t.Context(), school, id)
			if err != nil {
				t.Fatal(err)
			}
			w := &syncproto.Writer{Replica: b.phone.Replica, Author: b.phone.UserID, Now: time.Now()}
			_, delta := syncproto.Set(cur, "summary", json.RawMessage(strconv.Quote(fmt.Sprintf("复查 %d-%d", i, e))), w)
			req := syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: b.phone.DeviceID, BatchID: uuid.Must(uuid.NewV7()),
				Changes: []syncproto.Change{{OpID: uuid.Must(uuid.NewV7()), Record: delta, Base: cur.Version()}}}
			s := time.Now()
			resp, err := b.sy.Push(t.Context(), b.phone, req, nil)
			if err != nil || resp.Results[0].Status != syncproto.StatusApplied {
				t.Fatalf("edit: %v %+v", err, resp.Results)
			}
			if e == 3 {
				lat = append(lat, time.Since(s))
			}
		}
	}
	slices.Sort(lat)
	return lat[len(lat)/2]
}

// copyRaw copies the log into two plain collections, the targets of the
// raw inserts of push: raw_log with only the _id index, and rawidx_log
// with the indexes of the log.
func (b *bench) copyRaw(t testing.TB) {
	t.Helper()
	docs := b.readAll(t, servermongo.LogCollection)
	for _, target := range []string{"raw_", "rawidx_"} {
		coll := b.db.Collection(target + servermongo.LogCollection)
		if target == "rawidx_" {
			for _, m := range []mongo.IndexModel{
				{Keys: bson.D{{Key: "rr", Value: 1}}, Options: options.Index().SetUnique(true)},
				{Keys: bson.D{{Key: "p1", Value: 1}}}, {Keys: bson.D{{Key: "p2", Value: 1}}}, {Keys: bson.D{{Key: "k", Value: 1}}},
			} {
				if _, err := coll.Indexes().CreateOne(t.Context(), m); err != nil {
					t.Fatal(err)
				}
			}
		}
		for i := 0; i < len(docs); i += 1000 {
			if _, err := coll.InsertMany(t.Context(), docs[i:min(i+1000, len(docs))]); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// readAll reads every document of a collection with the driver.
func (b *bench) readAll(t testing.TB, name string) []any {
	cur, err := b.db.Collection(name).Find(t.Context(), bson.D{}, options.Find().SetBatchSize(1000))
	if err != nil {
		t.Fatal(err)
	}
	var docs []any
	for cur.Next(t.Context()) {
		docs = append(docs, slices.Clone(cur.Current))
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	return docs
}

// push times batches of 500 through the service, and the raw insert of
// the documents each wrote (decoded into Go values, so the driver encodes
// them as it encodes the service's). It returns records/s for the service,
// the raw insert into a plain collection and into one with the log's
// indexes, and the service with DecodePush of the JSON body.
func (b *bench) push(t testing.TB, rounds int) (svc, raw, rawIdx, decoded float64) {
	t.Helper()
	var tSvc, tRaw, tIdx, tDec time.Duration
	var n int
	for i := range rounds {
		sc := b.schools[i%len(b.schools)]
		before := b.counter(t, sc)
		req := b.batch(500, sc)
		start := time.Now()
		b.pushBatch(t, req)
		tSvc += time.Since(start)
		after := b.counter(t, sc)
		docs := b.slots(t, sc, before+1, after)
		for _, target := range []string{"raw_", "rawidx_"} {
			start = time.Now()
			if _, err := b.db.Collection(target+servermongo.LogCollection).InsertMany(t.Context(), docs); err != nil {
				t.Fatal(err)
			}
			if target == "raw_" {
				tRaw += time.Since(start)
			} else {
				tIdx += time.Since(start)
			}
		}
		n += 500

		body, err := syncproto.Marshal(b.batch(500, sc))
		if err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		dreq, rejected, err := syncproto.DecodePush(body)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.sy.Push(t.Context(), b.phone, dreq, rejected); err != nil {
			t.Fatal(err)
		}
		tDec += time.Since(start)
	}
	return float64(n) / tSvc.Seconds(), float64(n) / tRaw.Seconds(), float64(n) / tIdx.Seconds(), float64(n) / tDec.Seconds()
}

func (b *bench) counter(t testing.TB, scope string) int64 {
	var d struct {
		Next int64 `bson:"next"`
	}
	if err := b.db.Collection(servermongo.ScopesCollection).FindOne(t.Context(), bson.D{{Key: "_id", Value: scope}}).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d.Next
}

// slots returns the log documents of slots lo..hi of a scope (and the
// page marks written with them), decoded into bson.D.
func (b *bench) slots(t testing.TB, scope string, lo, hi int64) []any {
	var out []any
	for q := lo / servermongo.SmallPage; q <= hi/servermongo.SmallPage; q++ {
		cur, err := b.db.Collection(servermongo.LogCollection).Find(t.Context(), bson.D{{Key: "p2", Value: scope + "/" + strconv.FormatInt(q, 10)}})
		if err != nil {
			t.Fatal(err)
		}
		for cur.Next(t.Context()) {
			id := cur.Current.Lookup("_id").StringValue()
			if seq, ok := cur.Current.Lookup("q").AsInt64OK(); ok && (seq < lo || seq > hi) {
				continue
			}
			if m, ok := strings.CutPrefix(id, scope+"/m"); ok {
				if q, _ := strconv.ParseInt(m, 10, 64); q*servermongo.SmallPage < lo || q*servermongo.SmallPage > hi {
					continue
				}
			}
			var d bson.D
			if err := bson.Unmarshal(cur.Current, &d); err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
	}
	return out
}

// pull catches up on everything from an empty cursor, school by school,
// after a raw full read of the log with the driver. It returns the
// records/s of the pulls and of the raw read, and the median latency of
// one Pull call.
func (b *bench) pull(t testing.TB) (float64, float64, time.Duration) {
	t.Helper()
	var lat []time.Duration
	var n, nraw int
	var tPull, tRaw time.Duration
	// The raw baseline: one full read of the log (every school) with the
	// driver.
	start := time.Now()
	nraw = len(b.readAll(t, servermongo.LogCollection))
	tRaw = time.Since(start)
	for _, sc := range b.schools {
		cur := syncproto.Cursor{}
		for {
			s := time.Now()
			resp, err := b.sy.Pull(t.Context(), b.phone, syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Limit: 1000, Scope: []string{sc}}, cur)
			if err != nil {
				t.Fatal(err)
			}
			d := time.Since(s)
			lat = append(lat, d)
			tPull += d
			n += len(resp.Records)
			if cur, err = syncproto.DecodeCursor(resp.Cursor); err != nil {
				t.Fatal(err)
			}
			if !resp.More {
				break
			}
		}
	}
	slices.Sort(lat)
	return float64(n) / tPull.Seconds(), float64(nraw) / tRaw.Seconds(), lat[len(lat)/2]
}

// probe returns the median latency of n pulls of 100 records, each from a
// random position in a random school's log: an incremental sync.
func (b *bench) probe(t testing.TB, n int) time.Duration {
	t.Helper()
	epoch, err := b.store.Epoch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tops := map[string]int64{}
	var filled []string
	for _, sc := range b.schools {
		var d struct {
			Next int64 `bson:"next"`
		}
		if b.db.Collection(servermongo.ScopesCollection).FindOne(t.Context(), bson.D{{Key: "_id", Value: sc}}).Decode(&d) == nil && d.Next > 200 {
			tops[sc] = d.Next
			filled = append(filled, sc)
		}
	}
	var lat []time.Duration
	for i := range n {
		sc := filled[i%len(filled)]
		top := tops[sc]
		cur := syncproto.Cursor{Epoch: epoch, Pos: map[string]int64{sc: b.rng.Int64N(max(top-100, 1))}}
		s := time.Now()
		resp, err := b.sy.Pull(t.Context(), b.phone, syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Limit: 100, Scope: []string{sc}}, cur)
		if err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(s))
		if len(resp.Records) != 100 {
			t.Fatalf("probe pulled %d records, want 100", len(resp.Records))
		}
	}
	slices.Sort(lat)
	return lat[len(lat)/2]
}

// idlePull returns the median time of a pull that finds nothing new.
func (b *bench) idlePull(t testing.TB) time.Duration {
	t.Helper()
	cur := syncproto.Cursor{}
	for {
		resp, err := b.sy.Pull(t.Context(), b.phone, syncproto.PullRequest{Protocol: syncproto.ProtocolVersion}, cur)
		if err != nil {
			t.Fatal(err)
		}
		cur, _ = syncproto.DecodeCursor(resp.Cursor)
		if !resp.More {
			break
		}
	}
	var lat []time.Duration
	for range 5 {
		s := time.Now()
		if _, err := b.sy.Pull(t.Context(), b.phone, syncproto.PullRequest{Protocol: syncproto.ProtocolVersion}, cur); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(s))
	}
	slices.Sort(lat)
	return lat[len(lat)/2]
}
