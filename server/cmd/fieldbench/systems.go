package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// measure is one row cell of the table: a workload on one system.
type measure struct {
	Docs      int     `json:"docs"`
	Seconds   float64 `json:"seconds"`
	Rate      float64 `json:"docs_per_s"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	Requests  int     `json:"requests"`
	WireBytes int64   `json:"wire_bytes"`      // request and answer bodies, as sent
	WireGzip  int64   `json:"wire_gzip_bytes"` // the same bodies gzipped (level 6)
}

// timer collects the latencies and bytes of the requests of a workload,
// from any number of goroutines.
type timer struct {
	mu    sync.Mutex
	start time.Time
	lat   []time.Duration
	docs  int
	wire  int64
	gz    int64
}

func newTimer() *timer { return &timer{start: time.Now()} }

func (t *timer) add(d time.Duration, docs int, bodies ...[]byte) {
	var w, g int64
	for _, b := range bodies {
		w += int64(len(b))
		g += gzipLen(b)
	}
	t.mu.Lock()
	t.lat = append(t.lat, d)
	t.docs += docs
	t.wire += w
	t.gz += g
	t.mu.Unlock()
}

func (t *timer) done() measure {
	el := time.Since(t.start)
	slices.Sort(t.lat)
	m := measure{Docs: t.docs, Seconds: el.Seconds(), Rate: float64(t.docs) / el.Seconds(), Requests: len(t.lat), WireBytes: t.wire, WireGzip: t.gz}
	if len(t.lat) > 0 {
		m.P50ms = ms(t.lat[len(t.lat)/2])
		m.P99ms = ms(t.lat[min(len(t.lat)-1, len(t.lat)*99/100)])
	}
	return m
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func gzipLen(b []byte) int64 {
	if len(b) == 0 {
		return 0
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return int64(buf.Len())
}

// batches splits docs into batches of size n.
func batches(docs []*doc, n int) [][]*doc {
	var out [][]*doc
	for i := 0; i < len(docs); i += n {
		out = append(out, docs[i:min(i+n, len(docs))])
	}
	return out
}

// clients runs the batches on k goroutines, batch j on goroutine j%k.
func clients(k int, bs [][]*doc, run func(client int, b []*doc) error) error {
	var wg sync.WaitGroup
	errs := make([]error, k)
	for c := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := c; j < len(bs); j += k {
				if err := run(c, bs[j]); err != nil {
					errs[c] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// raw is the same FerretDB used without fieldsync: the plain documents
// inserted with InsertMany and read back with one find.
type raw struct {
	coll *mongo.Collection
}

func (r *raw) insert(ctx context.Context, docs []*doc, k int) (measure, error) {
	t := newTimer()
	err := clients(k, batches(docs, batchSize), func(_ int, b []*doc) error {
		in := make([]any, len(b))
		for i, d := range b {
			var m bson.M
			if err := bson.UnmarshalExtJSON(d.json, false, &m); err != nil {
				return err
			}
			m["_id"] = d.id.String()
			in[i] = m
		}
		s := time.Now()
		_, err := r.coll.InsertMany(ctx, in)
		t.add(time.Since(s), len(b))
		return err
	})
	return t.done(), err
}

func (r *raw) read(ctx context.Context) (measure, error) {
	t := newTimer()
	s := time.Now()
	cur, err := r.coll.Find(ctx, bson.D{})
	if err != nil {
		return measure{}, err
	}
	n := 0
	for cur.Next(ctx) {
		n++
	}
	if err := cur.Err(); err != nil {
		return measure{}, err
	}
	t.add(time.Since(s), n)
	return t.done(), nil
}

// pouch is pouchdb-server, a CouchDB-protocol server, through its HTTP
// API: _bulk_docs to write (with _rev to update), _changes to read.
type pouch struct {
	url  string // base URL of the database
	http *http.Client
	mu   sync.Mutex
	revs map[string]string
}

func (p *pouch) do(ctx context.Context, method, path string, body []byte, out any) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, p.url+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("pouchdb-server: %s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return b, json.Unmarshal(b, out)
	}
	return b, nil
}

func (p *pouch) create(ctx context.Context) error {
	_, err := p.do(ctx, http.MethodPut, "", nil, nil)
	return err
}

func (p *pouch) bulk(ctx context.Context, docs []*doc, k int, update bool) (measure, error) {
	t := newTimer()
	err := clients(k, batches(docs, batchSize), func(_ int, b []*doc) error {
		var body bytes.Buffer
		body.WriteString(`{"docs":[`)
		for i, d := range b {
			if i > 0 {
				body.WriteByte(',')
			}
			m := d.plain
			m["_id"] = d.id.String()
			if update {
				m = make(map[string]any, len(d.plain)+1)
				for k, v := range d.plain {
					m[k] = v
				}
				m[d.edit] = editValue(d)
				p.mu.Lock()
				m["_rev"] = p.revs[d.id.String()]
				p.mu.Unlock()
			}
			js, err := json.Marshal(m)
			delete(d.plain, "_id")
			if err != nil {
				return err
			}
			body.Write(js)
		}
		body.WriteString(`]}`)
		var res []struct {
			ID    string `json:"id"`
			Rev   string `json:"rev"`
			Error string `json:"error"`
		}
		s := time.Now()
		ans, err := p.do(ctx, http.MethodPost, "/_bulk_docs", body.Bytes(), &res)
		t.add(time.Since(s), len(b), body.Bytes(), ans)
		if err != nil {
			return err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, r := range res {
			if r.Error != "" {
				return fmt.Errorf("pouchdb-server: %s: %s", r.ID, r.Error)
			}
			p.revs[r.ID] = r.Rev
		}
		return nil
	})
	return t.done(), err
}

// changes reads the whole _changes feed with the documents, pages of
// batchSize.
func (p *pouch) changes(ctx context.Context) (measure, error) {
	t := newTimer()
	since := "0"
	for {
		var page struct {
			Results []json.RawMessage `json:"results"`
			LastSeq json.RawMessage   `json:"last_seq"`
		}
		s := time.Now()
		ans, err := p.do(ctx, http.MethodGet, "/_changes?include_docs=true&limit="+strconv.Itoa(batchSize)+"&since="+since, nil, &page)
		if err != nil {
			return measure{}, err
		}
		t.add(time.Since(s), len(page.Results), ans)
		if len(page.Results) == 0 {
			break
		}
		since = strings.Trim(string(page.LastSeq), `"`)
	}
	return t.done(), nil
}

// dirSize sums the sizes of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// schemaSize returns the size of FerretDB's PostgreSQL schema of a
// database (FerretDB v1 keeps each database in a schema of that name):
// its tables with their indexes and TOAST, through psql.
func schemaSize(ctx context.Context, psql, conn, db string) (int64, error) {
	q := "SELECT coalesce(sum(pg_total_relation_size(c.oid)),0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '" +
		strings.ReplaceAll(db, "'", "") + "' AND c.relkind = 'r'"
	out, err := exec.CommandContext(ctx, psql, "-d", conn, "-tAc", q).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("psql: %v: %s", err, out)
	}
	return strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
}

// openRaw opens the raw collection on a fresh database.
func openRaw(ctx context.Context, uri, db string) (*raw, func(), error) {
	cl, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return nil, nil, err
	}
	d := cl.Database(db)
	_ = d.Drop(ctx)
	return &raw{coll: d.Collection("records")}, func() { _ = cl.Disconnect(context.Background()) }, nil
}

// editValue is the new value of d's field d.edit in the update workload.
func editValue(d *doc) string {
	if d.edit == "collected_at" {
		return "2024-10-16T10:24:00+08:00"
	}
	return "复查：整改已落实，" + d.id.String()[30:]
}

// tableSizes returns the size of each table of FerretDB's schema of a
// database (with its indexes and TOAST), by collection: FerretDB v1 names
// a collection's table after it, with a hash suffix.
func tableSizes(ctx context.Context, psql, conn, db string) (map[string]int64, error) {
	q := "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '" +
		strings.ReplaceAll(db, "'", "") + "' AND c.relkind = 'r'"
	out, err := exec.CommandContext(ctx, psql, "-d", conn, "-tAF", "\t", "-c", q).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("psql: %v: %s", err, out)
	}
	sizes := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, size, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		if i := strings.LastIndexByte(name, '_'); i > 0 && len(name)-i == 9 {
			name = name[:i]
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(size), 10, 64)
		sizes[name] += n
	}
	return sizes, nil
}
