package mobile_test

import (
	"encoding/json"
	"testing"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/fieldsync/fieldsync/syncproto"
)

func TestFormsValidator(t *testing.T) {
	srv := mobiletest.NewServer()
	p := newPhone(t, srv, "a")
	p.E.Close()
	p.Opts.Validator = mobile.FormsValidator(nil)
	p.Open(t)
	d := hazardDraft("灭火器过期")
	d.Values["source"] = js("inspector_visit")
	d.Values["school_id"] = js(schoolA)
	_, err := p.E.Save(d)
	var pe *syncproto.Error
	if !asError(err, &pe) || pe.Fields["photo_ids"] == "" {
		t.Fatalf("a hazard without a photo: %v", err)
	}
	// A photo is an attachment record whose id goes into photo_ids.
	d.Values["photo_ids"] = js([]string{"0192b000-0000-7000-8000-000000000801"})
	r, err := p.E.Save(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.E.AttachPhotoTo(r.ID, "photo_ids", writeJPEG(t, t.TempDir(), 3, 16, 16), ""); err != nil {
		t.Fatal(err)
	}
	r, _ = p.E.Record(r.ID)
	var ids []string
	json.Unmarshal(r.Value("photo_ids"), &ids)
	if len(ids) != 2 {
		t.Fatalf("photo_ids %s", r.Value("photo_ids"))
	}
	if _, err := p.E.Save(mobile.Draft{ID: r.ID, Values: vals("severity", "critical")}); syncproto.ErrorCode(err) != syncproto.EINVALID {
		t.Fatalf("unknown severity: %v", err)
	}
}
