package faults

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Row is one scenario's line of the report.
type Row struct {
	Scenario string `json:"scenario"`
	// Fault says what was done to which process, Times how often.
	Fault string `json:"fault"`
	Times int    `json:"times"`
	// Phones, the push batches they had answered, the changes (field
	// versions and events) they wrote, all acknowledged in the end, and
	// the photos they took.
	Phones  int `json:"phones"`
	Batches int `json:"batches"`
	Changes int `json:"changes"`
	Photos  int `json:"photos"`
	// What the oracle found: acknowledged changes or photos missing from
	// the server, changes present twice, phones that did not converge.
	Lost       int `json:"lost"`
	Duplicated int `json:"duplicated"`
	Diverged   int `json:"diverged"`
	// Syncs tried and failed (and retried with backoff).
	Syncs       int `json:"syncs"`
	FailedSyncs int `json:"failed_syncs"`
	// Recovery: from the repair (for a kill: the kill) to the end of the
	// first sync that succeeded after it; the median and the worst.
	RecoveryP50 time.Duration `json:"recovery_p50_ns"`
	RecoveryMax time.Duration `json:"recovery_max_ns"`
	Wall        time.Duration `json:"wall_ns"`
	// Result is "pass", "FAIL" or "not run".
	Result  string   `json:"result"`
	Notes   []string `json:"notes,omitempty"`
	Details []string `json:"details,omitempty"` // the first findings of the oracle
}

// Report is the whole run.
type Report struct {
	Started time.Time `json:"started"`
	Seed    uint64    `json:"seed"`
	Machine string    `json:"machine"`
	Rows    []Row     `json:"rows"`
	mu      sync.Mutex
}

func (r *Report) add(row Row) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Rows = append(r.Rows, row)
}

func recoveryStats(ds []time.Duration) (p50, worst time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2], s[len(s)-1]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

// Table writes the report as one table, then the notes of each row.
func (r *Report) Table(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(w, "fault suite, %s, seed %d (%s)\n\n", r.Started.Format(time.DateTime), r.Seed, r.Machine)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tfault\ttimes\tphones\tbatches\tchanges\tphotos\tlost\tduplicated\tdiverged\tfailed syncs\trecovery p50 / max\twall\tresult")
	for _, x := range r.Rows {
		if x.Result == "not run" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t%s\n", x.Scenario, x.Fault, x.Result)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d / %d\t%s / %s\t%s\t%s\n",
			x.Scenario, x.Fault, x.Times, x.Phones, x.Batches, x.Changes, x.Photos, x.Lost, x.Duplicated, x.Diverged,
			x.FailedSyncs, x.Syncs, secs(x.RecoveryP50), secs(x.RecoveryMax), x.Wall.Round(time.Second), x.Result)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "recovery: from the repair (for a kill, the kill itself) to the end of the first sync that started once the fault was in place and succeeded")
	fmt.Fprintln(w, "(for MinIO, the first that uploaded a photo); 0 when phones were served throughout. Phones back off 0.2–3 s between failed syncs.")
	for _, x := range r.Rows {
		for _, n := range x.Notes {
			fmt.Fprintf(w, "%s: %s\n", x.Scenario, n)
		}
		for _, d := range x.Details {
			fmt.Fprintf(w, "%s: FOUND %s\n", x.Scenario, strings.SplitN(d, "\n", 2)[0])
		}
	}
}

// write saves the JSON report at path and the table beside it
// (report.txt), and prints the table to w.
func (r *Report) write(path string, w io.Writer) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	r.mu.Lock()
	b, err := json.MarshalIndent(r, "", "  ")
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}
	var sb strings.Builder
	r.Table(&sb)
	txt := strings.TrimSuffix(path, filepath.Ext(path)) + ".txt"
	if err := os.WriteFile(txt, []byte(sb.String()), 0o644); err != nil {
		return err
	}
	_, err = io.WriteString(w, sb.String())
	return err
}
