package media

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/syncproto"
)

// TestAttachmentIDs checks which attachment records a record names: the
// ids in "photo_ids" anywhere in its fields and items, and the "id" of a
// "photos" member without a sha256 of its own; not other ids, not text
// that is not a canonical id, not the record itself.
func TestAttachmentIDs(t *testing.T) {
	self := uuid.MustParse("0192b000-0000-7000-8000-000000000701")
	a, b, c := "0192b000-0000-7000-8000-000000000801", "0192b000-0000-7000-8000-000000000802", "0192b000-0000-7000-8000-000000000803"
	w := &syncproto.Writer{Replica: syncproto.ReplicaID(uuid.New()), Author: "u", Now: time.Now()}
	for _, tc := range []struct {
		name   string
		fields map[string]string
		events []string
		want   []string
	}{
		{"none", map[string]string{"title": `"灭火器过期"`}, nil, nil},
		{"photo_ids field", map[string]string{"photo_ids": `["` + b + `","` + a + `"]`}, nil, []string{a, b}},
		{"events' photo_ids and id-only photos", nil,
			[]string{`{"type":"reported","photo_ids":["` + a + `"]}`, `{"type":"rectification_reported","photos":[{"id":"` + c + `","phase":"after"},{"id":"` + b + `","sha256":"` + sha(1) + `"}]}`},
			[]string{a, c}},
		{"not ids, and itself", map[string]string{"photo_ids": `["IMG_0001.jpg","` + self.String() + `","0192B000-0000-7000-8000-000000000801",7]`}, nil, nil},
		{"other ids are not attachments", map[string]string{"notice_id": `"` + a + `"`, "found_in_visit_id": `"` + b + `"`}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &syncproto.Record{ID: self, Kind: "hazard", SchoolID: "s1"}
			for k, v := range tc.fields {
				r, _ = syncproto.Set(r, k, []byte(v), w)
			}
			for i, ev := range tc.events {
				r, _ = syncproto.Append(r, "events", uuid.NewString()[:8]+string(rune('a'+i)), []byte(ev), w)
			}
			if got := attachmentIDs(r); !slices.Equal(got, tc.want) {
				t.Fatalf("attachmentIDs = %v, want %v", got, tc.want)
			}
		})
	}
}

func sha(i byte) string {
	b := make([]byte, 64)
	for j := range b {
		b[j] = "0123456789abcdef"[(int(i)+j)%16]
	}
	return string(b)
}
