package forms_test

import (
	"testing"

	"github.com/fieldsync/fieldsync/forms"
)

func BenchmarkValidate(b *testing.B) {
	for _, tt := range []struct{ id, sample string }{
		{"visit.routine", "06_visit_routine"},
		{"lesson_observation", "07_lesson_observation"},
	} {
		d := mustBuiltin(b, tt.id, 1)
		rec := forms.StripEnvelope(mustSample(b, tt.sample))
		b.Run(tt.id, func(b *testing.B) {
			for b.Loop() {
				if errs := d.Validate(rec, today); len(errs) > 0 {
					b.Fatal(errs)
				}
			}
		})
	}
}
