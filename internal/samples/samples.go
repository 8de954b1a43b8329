// Package samples holds the domain brief's sample records (a fictional
// county 东河县: three schools, an inspector, an assignment, a routine
// visit, a lesson observation, a questionnaire response, a hazard with its
// whole rectification history, a monthly feedback form, a questionnaire
// template, a rectification notice and a follow-up task) and turns them
// into sync records, for tests, demos and benchmarks.
//
// It reads only its embedded files. It may import syncproto; it must not
// import server, mobile or any driver.
package samples

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

//go:embed data/*.json
var files embed.FS

// Sample is one sample record as written in the domain brief: an
// "expanded API view" with the sync envelope and, for hazards, the events
// embedded.
type Sample struct {
	Name   string          // file name without .json, e.g. "09_hazard_with_history"
	Entity string          // the "entity" member, e.g. "Hazard"
	Raw    json.RawMessage // the file's bytes
	Values map[string]any  // decoded with json.Number for numbers
}

// All returns every sample, sorted by file name.
func All() ([]Sample, error) {
	names, err := fs.Glob(files, "data/*.json")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]Sample, 0, len(names))
	for _, n := range names {
		s, err := byPath(n)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Get returns the sample with the given name (file name without .json).
func Get(name string) (Sample, error) { return byPath("data/" + name + ".json") }

func byPath(p string) (Sample, error) {
	b, err := files.ReadFile(p)
	if err != nil {
		return Sample{}, fmt.Errorf("samples: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v map[string]any
	if err := d.Decode(&v); err != nil {
		return Sample{}, fmt.Errorf("samples: %s: %w", p, err)
	}
	ent, _ := v["entity"].(string)
	return Sample{Name: strings.TrimSuffix(path.Base(p), ".json"), Entity: ent, Raw: b, Values: v}, nil
}

// Kind returns the record kind of a sample entity: "Hazard" → "hazard",
// "LessonObservation" → "lesson_observation".
func Kind(entity string) string {
	var b strings.Builder
	for i, r := range entity {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Form names a built-in form version (see package forms).
type Form struct {
	ID      string
	Version int
}

// Forms maps record kinds to the built-in form version that validates the
// sample of that kind. The student questionnaire is at version 3, like the
// template the sample response was filled in with.
var Forms = map[string]Form{
	"visit":                  {"visit.routine", 1},
	"lesson_observation":     {"lesson_observation", 1},
	"questionnaire_response": {"questionnaire.student_burden", 3},
	"hazard":                 {"hazard.report", 1},
	"monthly_feedback":       {"monthly_feedback", 1},
}

// Envelope lists the sync envelope members of the samples (docs/domain.md
// §6.0) and the members the samples embed for readability only: they are
// not record fields.
var Envelope = []string{
	"entity", "id", "rev", "created_at", "updated_at", "created_by", "updated_by",
	"device_id", "hlc", "server_received_at", "schema_version", "deleted_at",
}

// Record turns a sample into a sync record written by w: the envelope
// becomes the header, every other member a field, and a hazard's embedded
// "events" become items of the "events" collection (the hazard's status
// and other server-derived members stay as fields for display; the sync
// layer folds status from the events).
func (s Sample) Record(w *syncproto.Writer) (*syncproto.Record, error) {
	idStr, _ := s.Values["id"].(string)
	id, err := syncproto.ParseID(idStr)
	if err != nil {
		return nil, fmt.Errorf("samples: %s: id: %w", s.Name, err)
	}
	kind := Kind(s.Entity)
	r := &syncproto.Record{ID: id, Kind: kind}
	if kind == "school" {
		r.SchoolID = idStr
	} else if sid, ok := s.Values["school_id"].(string); ok {
		r.SchoolID = sid
	}
	if f, ok := Forms[kind]; ok {
		r.FormID, r.FormVersion = f.ID, f.Version
	}
	if c, ok := s.Values["created_at"].(string); ok {
		if t, err := time.Parse(time.RFC3339, c); err == nil {
			r.CreatedAt = t
		}
	}
	r.CreatedBy, _ = s.Values["created_by"].(string)
	keys := make([]string, 0, len(s.Values))
	for k := range s.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	skip := map[string]bool{}
	for _, k := range Envelope {
		skip[k] = true
	}
	for _, k := range keys {
		if skip[k] {
			continue
		}
		raw, err := syncproto.Marshal(s.Values[k])
		if err != nil {
			return nil, err
		}
		if k == "events" && kind == "hazard" {
			evs, _ := s.Values[k].([]any)
			for _, e := range evs {
				m, _ := e.(map[string]any)
				eid, _ := m["id"].(string)
				data, err := syncproto.Marshal(m)
				if err != nil {
					return nil, err
				}
				r, _ = syncproto.Append(r, "events", eid, data, w)
			}
			continue
		}
		r, _ = syncproto.Set(r, k, raw, w)
	}
	return r, nil
}

// Records returns every sample as a record written by w, in file order.
func Records(w *syncproto.Writer) ([]*syncproto.Record, error) {
	all, err := All()
	if err != nil {
		return nil, err
	}
	out := make([]*syncproto.Record, 0, len(all))
	for _, s := range all {
		r, err := s.Record(w)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// OfficeReplica is the replica id the samples' office writes use in demos
// and tests.
var OfficeReplica = uuid.MustParse("0192b000-0000-7000-8000-00000000f001")
