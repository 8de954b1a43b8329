package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/samples"
	"github.com/fieldsync/fieldsync/syncproto"
)

// doc is one generated record: the sync record a phone pushes, and the
// same values as the plain JSON document a CouchDB app or a raw insert
// stores (id, school, kind and the form's values; no versions).
type doc struct {
	id     uuid.UUID
	school string
	kind   string
	rec    *syncproto.Record
	plain  map[string]any
	json   []byte // plain, encoded
	edit   string // a text field the update workload rewrites
	device uuid.UUID
	photos int
}

// The mix of the issue: 15% visits, 20% lesson observations, 40%
// questionnaires, 25% hazards naming 2–6 photos.
var mix = []struct {
	sample string
	share  int
	edit   string
}{
	{"06_visit_routine", 15, "briefing_summary"},
	{"07_lesson_observation", 20, "strengths"},
	{"08_questionnaire_response", 40, "collected_at"},
	{"09_hazard_with_history", 25, "description"},
}

// generator makes realistic records from the domain's sample shapes.
type generator struct {
	rng     *rand.Rand
	samples map[string]samples.Sample
	userID  string
	now     time.Time
}

func newGenerator(seed uint64, userID string) (*generator, error) {
	g := &generator{rng: rand.New(rand.NewPCG(seed, 18)), samples: map[string]samples.Sample{}, userID: userID, now: time.Now().UTC()}
	for _, m := range mix {
		s, err := samples.Get(m.sample)
		if err != nil {
			return nil, err
		}
		g.samples[m.sample] = s
	}
	return g, nil
}

// pick returns the sample of record i of n so that every prefix of 20
// records follows the mix (deterministic, not random: every run and
// every system gets the same shares).
func pick(i int) int {
	k := i % 20
	switch {
	case k < 3:
		return 0
	case k < 7:
		return 1
	case k < 15:
		return 2
	}
	return 3
}

// vary returns a deep copy of a sample's decoded value with the Chinese
// text of its top-level fields made unique (so that no two records
// compress alike; nested text may be computed by the form, and stays).
func (g *generator) vary(v any) any { return g.copy(v, true) }

func (g *generator) copy(v any, top bool) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			if s, ok := x.(string); ok && top && utf8.RuneCountInString(s) > 10 && len(s) != utf8.RuneCountInString(s) {
				out[k] = s + fmt.Sprintf("（%d）", g.rng.IntN(100000))
				continue
			}
			out[k] = g.copy(x, false)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = g.copy(x, false)
		}
		return out
	}
	return v
}

func (g *generator) sha() string {
	var b [32]byte
	for i := range b {
		b[i] = byte(g.rng.Uint32())
	}
	return hex.EncodeToString(b[:])
}

// records makes n records spread over the given schools, record i
// written by devices[(i/batchSize)%len(devices)]: batch j of batchSize
// is phone j%len(devices)'s.
func (g *generator) records(n int, schools []string, devices []uuid.UUID) ([]*doc, error) {
	out := make([]*doc, 0, n)
	for i := range n {
		m := mix[pick(i)]
		s := g.samples[m.sample]
		vals := g.vary(s.Values).(map[string]any)
		id := uuid.Must(uuid.NewV7())
		school := schools[i%len(schools)]
		dev := devices[(i/batchSize)%len(devices)]
		vals["id"], vals["school_id"] = id.String(), school
		vals["created_at"] = g.now.Truncate(time.Second).Format(time.RFC3339)
		vals["created_by"], vals["updated_by"] = g.userID, g.userID
		photos := 0
		if s.Entity == "Hazard" {
			photos = 2 + g.rng.IntN(5)
			ids := make([]any, photos)
			refs := make([]any, photos)
			for k := range photos {
				ids[k] = uuid.Must(uuid.NewV7()).String()
				refs[k] = map[string]any{"sha256": g.sha(), "size": json.Number(fmt.Sprint(200000 + g.rng.IntN(3000000))), "content_type": "image/jpeg", "phase": "evidence"}
			}
			vals["photo_ids"] = ids
			evs, _ := vals["events"].([]any)
			first, _ := evs[0].(map[string]any)
			first["id"] = uuid.Must(uuid.NewV7()).String()
			first["actor_id"] = g.userID
			first["photo_ids"] = ids
			first["photos"] = refs
			vals["events"] = []any{first}
			vals["status"] = "reported"
			for _, k := range []string{"closed_at", "closed_by", "notice_id", "deadline"} {
				delete(vals, k)
			}
		}
		sample := samples.Sample{Name: s.Name, Entity: s.Entity, Values: vals}
		w := &syncproto.Writer{Replica: syncproto.ReplicaID(dev), Author: g.userID, Now: g.now}
		rec, err := sample.Record(w)
		if err != nil {
			return nil, err
		}
		plain := map[string]any{"kind": rec.Kind}
		for k, v := range vals {
			if k == "entity" || k == "rev" || k == "hlc" || k == "device_id" || k == "server_received_at" {
				continue
			}
			plain[k] = v
		}
		js, err := syncproto.Marshal(plain)
		if err != nil {
			return nil, err
		}
		out = append(out, &doc{id: id, school: school, kind: rec.Kind, rec: rec, plain: plain, json: js, edit: m.edit, device: dev, photos: photos})
	}
	return out, nil
}
