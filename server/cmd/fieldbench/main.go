// Command fieldbench measures fieldsync's sync against the store under it
// and a peer, in one run, on the same generated realistic records: a
// raw InsertMany and full read on the same FerretDB, pouchdb-server (a
// CouchDB-protocol server: _bulk_docs, _changes, updates with _rev), and
// fieldsyncd's push (1 and 4 phones), pull and update over HTTP, with
// p50/p99 latencies, bytes on the wire (plain and gzipped) and database
// sizes. It prints one table, writes it as JSON and draws the ratios as
// a PNG. A second part measures push and pull per record with 4, 50 and
// 500 schools per phone.
//
// bench.sh starts the servers and runs it (make bench). It talks to
// fieldsyncd only through the HTTP client (package client), to FerretDB
// through the driver and to PostgreSQL through psql; it imports no
// server package.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/client"
)

// batchSize is the batch of every write and the page of every read.
const batchSize = 500

type config struct {
	server, admin, mongo, rawDB, fsDB string
	pouch, pouchDir                   string
	psql, pg                          string
	out                               string
	records, schools, modeRecords     int
	modes                             []int
	onlyPush                          bool
	pids                              cpuMeter
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil && v > 0 {
		return v
	}
	return def
}

func main() {
	var cfg config
	var modes string
	flag.StringVar(&cfg.server, "server", "http://127.0.0.1:8080", "fieldsyncd's base URL")
	flag.StringVar(&cfg.admin, "admin-token", os.Getenv("FIELDSYNC_ADMIN_TOKEN"), "fieldsyncd's admin token")
	flag.StringVar(&cfg.mongo, "mongo", os.Getenv("FIELDSYNC_MONGO_URI"), "FerretDB's URI, for the raw baseline")
	flag.StringVar(&cfg.rawDB, "raw-db", "fieldbench_raw", "database of the raw baseline (dropped first)")
	flag.StringVar(&cfg.fsDB, "fieldsync-db", cmp.Or(os.Getenv("FIELDSYNC_MONGO_DB"), "fieldsync"), "fieldsyncd's database, for its size")
	flag.StringVar(&cfg.pouch, "pouch", "", "pouchdb-server's base URL (empty: not measured)")
	flag.StringVar(&cfg.pouchDir, "pouch-dir", "", "pouchdb-server's data directory, for its size")
	flag.StringVar(&cfg.psql, "psql", "/usr/lib/postgresql/15/bin/psql", "psql, to read relation sizes")
	flag.StringVar(&cfg.pg, "pg", "", "PostgreSQL connection string of FerretDB's database (empty: sizes not measured)")
	flag.StringVar(&cfg.out, "out", ".cache/bench", "directory of fieldbench.json and fieldbench.png")
	flag.IntVar(&cfg.records, "records", envInt("BENCH_RECORDS", 2000), "records per workload (env BENCH_RECORDS)")
	flag.IntVar(&cfg.schools, "schools", envInt("BENCH_SCHOOLS", 4), "schools per phone (env BENCH_SCHOOLS)")
	flag.IntVar(&cfg.modeRecords, "mode-records", envInt("BENCH_MODE_RECORDS", 1000), "records per schools-per-phone mode (env BENCH_MODE_RECORDS)")
	flag.StringVar(&modes, "modes", cmp.Or(os.Getenv("BENCH_SCHOOL_MODES"), "4,50,500"), "schools per phone of the second part, comma-separated; \"none\" skips it")
	flag.BoolVar(&cfg.onlyPush, "only-push", false, "measure only fieldsync's pushes (for a CPU profile of fieldsyncd under push)")
	pids := flag.String("pids", "", "name=pid,… of the servers (fieldsyncd, ferretdb, postgres, pouch), to report the CPU they spend")
	flag.Parse()
	cfg.pids = parsePids(*pids)
	if modes != "none" {
		for _, m := range strings.Split(modes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(m))
			if err != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "fieldbench: -modes: %q is not a number of schools\n", m)
				os.Exit(2)
			}
			cfg.modes = append(cfg.modes, n)
		}
	}
	if err := run(context.Background(), cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fieldbench:", err)
		os.Exit(1)
	}
}

// Report is what fieldbench.json holds.
type Report struct {
	At          time.Time          `json:"at"`
	LoadAvg     string             `json:"loadavg"`
	Records     int                `json:"records"`
	Schools     int                `json:"schools"`
	RecordBytes int64              `json:"record_json_bytes"` // the plain JSON of the records of one workload
	Hazard      map[string]measure `json:"hazard_vs_other"`
	Raw         map[string]measure `json:"raw"`
	Pouch       map[string]measure `json:"pouchdb_server,omitempty"`
	Fieldsync   map[string]measure `json:"fieldsync"`
	Sizes       map[string]int64   `json:"sizes"`
	Modes       []ModeResult       `json:"schools_per_phone,omitempty"`
	// Tables is fieldsync's database size after the update, by collection.
	Tables map[string]int64 `json:"fieldsync_bytes_by_collection,omitempty"`
	// CPU is the CPU seconds each server spent during the pushes (1 and
	// 4 clients) of each system.
	CPU map[string]map[string]float64 `json:"cpu_seconds_during_push,omitempty"`
}

// ModeResult is push and pull cost per record with a number of schools
// per phone.
type ModeResult struct {
	Schools int     `json:"schools"`
	Push    measure `json:"push"`
	Pull    measure `json:"pull"`
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fieldbench: "+format+"\n", args...)
}

func newIDs(n int) []uuid.UUID {
	out := make([]uuid.UUID, n)
	for i := range out {
		out[i] = uuid.Must(uuid.NewV7())
	}
	return out
}

func run(ctx context.Context, cfg config, w io.Writer) error {
	hc := &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}
	admin := &client.Client{BaseURL: cfg.server, Client: hc, Token: func() string { return cfg.admin }}
	rep := Report{At: time.Now().UTC(), Records: cfg.records, Schools: cfg.schools,
		Raw: map[string]measure{}, Fieldsync: map[string]measure{}, Sizes: map[string]int64{}, Hazard: map[string]measure{}}

	userID := uuid.Must(uuid.NewV7()).String()
	schools := make([]string, cfg.schools)
	for i := range schools {
		schools[i] = uuid.Must(uuid.NewV7()).String()
	}
	// Device 0 writes set A (one client) and edits it, 1–4 write set B
	// (four clients), 5 pulls.
	devs := newIDs(6)
	gen, err := newGenerator(1, userID)
	if err != nil {
		return err
	}
	setA, err := gen.records(cfg.records, schools, devs[:1])
	if err != nil {
		return err
	}
	setB, err := gen.records(cfg.records, schools, devs[1:5])
	if err != nil {
		return err
	}
	for _, d := range setA {
		rep.RecordBytes += int64(len(d.json))
	}
	logf("%d + %d records, %.0f B of plain JSON per record; load average %s", len(setA), len(setB), float64(rep.RecordBytes)/float64(len(setA)), loadavg())

	// The raw baseline.
	r, closeRaw, err := openRaw(ctx, cfg.mongo, cfg.rawDB)
	if err != nil {
		return err
	}
	defer closeRaw()
	// One batch first into a collection dropped afterwards: the first
	// insert creates the collection.
	warm, err := gen.records(batchSize, schools, devs[:1])
	if err != nil {
		return err
	}
	if _, err := (&raw{coll: r.coll.Database().Collection("warmup")}).insert(ctx, warm, 1); err != nil {
		return fmt.Errorf("raw insert: %w", err)
	}
	if err := r.coll.Database().Collection("warmup").Drop(ctx); err != nil {
		return err
	}
	rep.CPU = map[string]map[string]float64{}
	cpu0 := cfg.pids.read()
	if rep.Raw["push1"], err = r.insert(ctx, setA, 1); err != nil {
		return fmt.Errorf("raw insert: %w", err)
	}
	if rep.Raw["push4"], err = r.insert(ctx, setB, 4); err != nil {
		return fmt.Errorf("raw insert: %w", err)
	}
	rep.CPU["raw"] = cfg.pids.since(cpu0)
	if rep.Raw["pull"], err = r.read(ctx); err != nil {
		return fmt.Errorf("raw read: %w", err)
	}
	logf("raw done")

	// pouchdb-server.
	if cfg.pouch != "" {
		rep.Pouch = map[string]measure{}
		p := &pouch{url: strings.TrimRight(cfg.pouch, "/") + "/fieldbench", http: hc, revs: map[string]string{}}
		if err := p.create(ctx); err != nil {
			return err
		}
		cpu0 := cfg.pids.read()
		if rep.Pouch["push1"], err = p.bulk(ctx, setA, 1, false); err != nil {
			return err
		}
		if rep.Pouch["push4"], err = p.bulk(ctx, setB, 4, false); err != nil {
			return err
		}
		rep.CPU["pouch"] = cfg.pids.since(cpu0)
		if rep.Pouch["pull"], err = p.changes(ctx); err != nil {
			return err
		}
		if cfg.pouchDir != "" {
			rep.Sizes["pouch"] = dirSize(cfg.pouchDir)
		}
		if rep.Pouch["update"], err = p.bulk(ctx, setA, 1, true); err != nil {
			return err
		}
		if cfg.pouchDir != "" {
			rep.Sizes["pouch_after_update"] = dirSize(cfg.pouchDir)
		}
		logf("pouchdb-server done")
	}

	// fieldsync, after one batch of another inspector in another school
	// (the first push creates the collections and their indexes); its
	// size is subtracted.
	if _, err := schoolsMode(ctx, cfg, admin, hc, 1, batchSize, false); err != nil {
		return err
	}
	var base int64
	if cfg.pg != "" {
		if base, err = schemaSize(ctx, cfg.psql, cfg.pg, cfg.fsDB); err != nil {
			return err
		}
	}
	phones, err := inspector(ctx, admin, cfg.server, hc, userID, schools, devs)
	if err != nil {
		return err
	}
	cpu0 = cfg.pids.read()
	if rep.Fieldsync["push1"], err = push(ctx, phones[:1], setA, false, false); err != nil {
		return err
	}
	if rep.Fieldsync["push4"], err = push(ctx, phones[1:5], setB, false, false); err != nil {
		return err
	}
	rep.CPU["fieldsync"] = cfg.pids.since(cpu0)
	if cfg.onlyPush {
		return output(cfg, &rep, w)
	}
	if rep.Fieldsync["pull"], err = pull(ctx, phones[5]); err != nil {
		return err
	}
	if cfg.pg != "" {
		if rep.Sizes["raw"], err = schemaSize(ctx, cfg.psql, cfg.pg, cfg.rawDB); err != nil {
			return err
		}
		if rep.Sizes["fieldsync"], err = schemaSize(ctx, cfg.psql, cfg.pg, cfg.fsDB); err != nil {
			return err
		}
		rep.Sizes["fieldsync"] -= base
	}
	if rep.Fieldsync["update"], err = push(ctx, phones[:1], setA, true, false); err != nil {
		return err
	}
	if cfg.pg != "" {
		if rep.Sizes["fieldsync_after_update"], err = schemaSize(ctx, cfg.psql, cfg.pg, cfg.fsDB); err != nil {
			return err
		}
		rep.Sizes["fieldsync_after_update"] -= base
		if rep.Tables, err = tableSizes(ctx, cfg.psql, cfg.pg, cfg.fsDB); err != nil {
			return err
		}
	}
	logf("fieldsync done; load average %s", loadavg())

	// Hazards against the other records, and gzip bodies, on fresh
	// records of phone 0.
	if err := kindsAndGzip(ctx, &rep, gen, schools, phones[0], devs[0]); err != nil {
		return err
	}

	for _, n := range cfg.modes {
		m, err := schoolsMode(ctx, cfg, admin, hc, n, cfg.modeRecords, true)
		if err != nil {
			return err
		}
		rep.Modes = append(rep.Modes, m)
		logf("%d schools per phone done", n)
	}
	return output(cfg, &rep, w)
}

// output prints the table and writes the JSON and the chart.
func output(cfg config, rep *Report, w io.Writer) error {
	rep.LoadAvg = loadavg()
	printTable(w, rep)
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(cfg.out, "fieldbench.json"), js, 0o644); err != nil {
		return err
	}
	png := filepath.Join(cfg.out, "fieldbench.png")
	if err := chart(rep, png); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nJSON: %s  chart: %s\n", filepath.Join(cfg.out, "fieldbench.json"), png)
	return nil
}

// kindsAndGzip pushes hazards alone and the other kinds alone (the cost
// of a hazard's photos), and the same mix with gzip bodies.
func kindsAndGzip(ctx context.Context, rep *Report, gen *generator, schools []string, ph *phone, dev uuid.UUID) error {
	n := max(rep.Records/2, batchSize)
	all, err := gen.records(n*2, schools, []uuid.UUID{dev})
	if err != nil {
		return err
	}
	var haz, other []*doc
	for _, d := range all {
		if d.kind == "hazard" {
			haz = append(haz, d)
		} else if len(other) < len(all)/4 {
			other = append(other, d)
		}
	}
	if rep.Hazard["hazard"], err = push(ctx, []*phone{ph}, haz, false, false); err != nil {
		return err
	}
	if rep.Hazard["other"], err = push(ctx, []*phone{ph}, other, false, false); err != nil {
		return err
	}
	gz, err := gen.records(rep.Records, schools, []uuid.UUID{dev})
	if err != nil {
		return err
	}
	rep.Fieldsync["push1_gzip"], err = push(ctx, []*phone{ph}, gz, false, true)
	return err
}

// schoolsMode pushes modeRecords records spread over n schools of one
// phone, then pulls them all with another.
func schoolsMode(ctx context.Context, cfg config, admin *client.Client, hc *http.Client, n, records int, pulls bool) (ModeResult, error) {
	userID := uuid.Must(uuid.NewV7()).String()
	schools := make([]string, n)
	for i := range schools {
		schools[i] = uuid.Must(uuid.NewV7()).String()
	}
	devs := newIDs(2)
	phones, err := inspector(ctx, admin, cfg.server, hc, userID, schools, devs)
	if err != nil {
		return ModeResult{}, err
	}
	gen, err := newGenerator(uint64(n), userID)
	if err != nil {
		return ModeResult{}, err
	}
	docs, err := gen.records(records, schools, devs[:1])
	if err != nil {
		return ModeResult{}, err
	}
	m := ModeResult{Schools: n}
	if m.Push, err = push(ctx, phones[:1], docs, false, false); err != nil || !pulls {
		return m, err
	}
	m.Pull, err = pull(ctx, phones[1])
	return m, err
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func ratio(a, b float64) string {
	if b == 0 || a == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// printTable prints the report as one Markdown table (and the modes as
// a second).
func printTable(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "\nfieldbench: %d records per workload (15%% visits, 20%% lesson observations, 40%% questionnaires, 25%% hazards with 2–6 photos), %d schools per phone, batches and pages of %d; %.0f B of plain JSON per record; load average at the end %s\n\n",
		rep.Records, rep.Schools, batchSize, float64(rep.RecordBytes)/float64(max(rep.Records, 1)), rep.LoadAvg)
	fmt.Fprintln(w, "| workload | pouchdb-server docs/s | raw docs/s | fieldsync docs/s | fs ÷ raw | fs ÷ pouch | fieldsync p50 / p99 ms | pouch p50 / p99 ms | fs wire ÷ JSON (gzip) |")
	fmt.Fprintln(w, "| --- | --: | --: | --: | --: | --: | --: | --: | --: |")
	rows := []struct{ key, label string }{
		{"push1", "push, 1 client"}, {"push4", "push, 4 clients"}, {"pull", "pull, pages of 500"}, {"update", "update, batches of 500"}, {"push1_gzip", "push, 1 client, gzip body"},
	}
	for _, row := range rows {
		f, okF := rep.Fieldsync[row.key]
		if !okF {
			continue
		}
		p := rep.Pouch[row.key]
		r := rep.Raw[row.key]
		wire := "—"
		if f.Docs > 0 && rep.RecordBytes > 0 {
			per := float64(rep.RecordBytes) / float64(rep.Records)
			wire = fmt.Sprintf("%.2f (%.2f)", float64(f.WireBytes)/float64(f.Docs)/per, float64(f.WireGzip)/float64(f.Docs)/per)
		}
		num := func(m measure) string {
			if m.Docs == 0 {
				return "—"
			}
			return fmt.Sprintf("%.0f", m.Rate)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %.0f / %.0f | %.0f / %.0f | %s |\n", row.label, num(p), num(r), num(f),
			ratio(f.Rate, r.Rate), ratio(f.Rate, p.Rate), f.P50ms, f.P99ms, p.P50ms, p.P99ms, wire)
	}
	s := rep.Sizes
	fmt.Fprintf(w, "| database size after the pushes | %s | %s | %s | %s | %s | | | |\n", mb(s["pouch"]), mb(s["raw"]), mb(s["fieldsync"]),
		ratio(float64(s["fieldsync"]), float64(s["raw"])), ratio(float64(s["fieldsync"]), float64(s["pouch"])))
	fmt.Fprintf(w, "| … and after the update | %s | | %s | | %s | | | |\n", mb(s["pouch_after_update"]), mb(s["fieldsync_after_update"]),
		ratio(float64(s["fieldsync_after_update"]), float64(s["pouch_after_update"])))
	if h, o := rep.Hazard["hazard"], rep.Hazard["other"]; h.Docs > 0 && o.Docs > 0 {
		fmt.Fprintf(w, "| push, hazards only ÷ other kinds only | | | %.0f ÷ %.0f | | | %.0f / %.0f | | cost ×%.2f |\n", h.Rate, o.Rate, h.P50ms, o.P50ms, o.Rate/h.Rate)
	}
	if len(rep.Tables) > 0 {
		type kv struct {
			k string
			v int64
		}
		var ts []kv
		for k, v := range rep.Tables {
			ts = append(ts, kv{k, v})
		}
		sort.Slice(ts, func(i, j int) bool { return ts[i].v > ts[j].v })
		fmt.Fprint(w, "\nfieldsync's database after the update, by collection (with indexes):")
		for i, t := range ts[:min(6, len(ts))] {
			sep := ","
			if i == 0 {
				sep = ""
			}
			fmt.Fprintf(w, "%s %s %s", sep, t.k, mb(t.v))
		}
		fmt.Fprintln(w)
	}
	if len(rep.CPU) > 0 {
		fmt.Fprintf(w, "\nCPU seconds spent by each server during the pushes of %d records (1 and 4 clients):\n\n", 2*rep.Records)
		fmt.Fprintln(w, "| pushing into | fieldsyncd | FerretDB | PostgreSQL | pouchdb-server | wall s |")
		fmt.Fprintln(w, "| --- | --: | --: | --: | --: | --: |")
		for _, sys := range []struct {
			key  string
			wall float64
		}{{"raw", rep.Raw["push1"].Seconds + rep.Raw["push4"].Seconds}, {"pouch", rep.Pouch["push1"].Seconds + rep.Pouch["push4"].Seconds},
			{"fieldsync", rep.Fieldsync["push1"].Seconds + rep.Fieldsync["push4"].Seconds}} {
			c, ok := rep.CPU[sys.key]
			if !ok {
				continue
			}
			fmt.Fprintf(w, "| %s | %.1f | %.1f | %.1f | %.1f | %.1f |\n", sys.key, c["fieldsyncd"], c["ferretdb"], c["postgres"], c["pouch"], sys.wall)
		}
	}
	if len(rep.Modes) > 0 {
		fmt.Fprintln(w, "\n| schools per phone | push docs/s | push ms per record | pull docs/s | pull ms per record | pull p50 page ms |")
		fmt.Fprintln(w, "| --: | --: | --: | --: | --: | --: |")
		for _, m := range rep.Modes {
			fmt.Fprintf(w, "| %d | %.0f | %.2f | %.0f | %.2f | %.0f |\n", m.Schools, m.Push.Rate, 1000/m.Push.Rate, m.Pull.Rate, 1000/m.Pull.Rate, m.Pull.P50ms)
		}
		first, last := rep.Modes[0], rep.Modes[len(rep.Modes)-1]
		fmt.Fprintf(w, "\ncost per record, %d ÷ %d schools: push ×%.2f, pull ×%.2f (goal ≤ 1.3)\n", last.Schools, first.Schools,
			first.Push.Rate/last.Push.Rate, first.Pull.Rate/last.Pull.Rate)
	}
}
