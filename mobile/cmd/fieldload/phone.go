package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// phone is one simulated phone and its month of work.
type phone struct {
	i      int
	cfg    Config
	dir    string
	client *http.Client
	res    *Result
	rng    *rand.Rand

	e         *mobile.Engine
	inspector string
	user      string // the inspector's user id: who the phone's events name as their actor
	schools   []string
	hazards   []uuid.UUID
	visits    []uuid.UUID
	photoN    int
}

var schoolNS = uuid.MustParse("0192b000-0000-7000-8000-00000000aaaa")

// schoolIDs are the phone's schools: distinct per phone, as responsibility
// inspectors each cover their own schools.
func (p *phone) schoolIDs() []string {
	out := make([]string, p.cfg.Schools)
	for j := range out {
		out[j] = uuid.NewSHA1(schoolNS, fmt.Appendf(nil, "load-%d-%d", p.i, j)).String()
	}
	return out
}

func (p *phone) run(ctx context.Context, prov provisioner) error {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}
	p.schools = p.schoolIDs()
	code, ins, err := prov.provision(ctx, p.i, p.schools)
	if err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	p.inspector = ins
	e, err := mobile.Open(filepath.Join(p.dir, "phone.db"), mobile.Options{
		HTTPClient: p.client, NoSync: true, Validator: mobile.FormsValidator(nil),
		Wrap: func(t mobile.Transport) mobile.Transport { return &timed{T: t, res: p.res} },
	})
	if err != nil {
		return err
	}
	defer e.Close()
	p.e = e
	enr, err := e.Enroll(ctx, p.cfg.Server, code, fmt.Sprintf("fieldload phone %d", p.i))
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	p.user = enr.UserID
	// A month of work, synced Syncs times, the last at the end of it.
	const days = 30
	hazards := min(p.cfg.Records*2/3, p.cfg.Photos)
	visits := p.cfg.Records - hazards
	extraPhotos := p.cfg.Photos - hazards
	perDay := func(total, day int) int { return total*(day+1)/days - total*day/days }
	for day := range days {
		date := time.Now().AddDate(0, 0, day-days+1).In(chinaTime).Format(time.DateOnly)
		for range perDay(visits, day) {
			p.visit(date)
		}
		for range perDay(hazards, day) {
			p.hazard()
		}
		for range perDay(extraPhotos, day) {
			p.eventPhoto()
		}
		// Follow-ups on earlier work: an edit and a note.
		if len(p.hazards) > 0 && p.rng.IntN(2) == 0 {
			h := p.hazards[p.rng.IntN(len(p.hazards))]
			p.check(p.e.Save(mobile.Draft{ID: h, Values: map[string]json.RawMessage{"description": js(fmt.Sprintf("复查：%s 仍未整改", date))}}))
			_, err := p.e.Append(h, "events", js(map[string]any{"type": "note_added", "actor_id": p.user, "actor_role": "inspector",
				"occurred_at": time.Now().Format(time.RFC3339), "note": "已电话提醒校长", "base_rev": 0}))
			p.check(nil, err)
		}
		if (day+1)%(days/p.cfg.Syncs) == 0 || day == days-1 {
			if err := p.sync(ctx); err != nil {
				return err
			}
		}
	}
	st, err := e.Status()
	if err != nil {
		return err
	}
	if st.Outbox+st.Photos+st.Rejected > 0 {
		p.res.fail(fmt.Sprintf("phone %d: after the last sync: outbox %d, photos %d, rejected %d", p.i, st.Outbox, st.Photos, st.Rejected))
		if st.Rejected > 0 {
			if probs, _ := e.Problems(); len(probs) > 0 {
				p.res.fail(fmt.Sprintf("phone %d: first rejection: %s %s", p.i, probs[0].Message, probs[0].FieldErrors))
			}
		}
	}
	return nil
}

// sync syncs, retrying a failed sync up to twice; every failure counts
// as an error.
func (p *phone) sync(ctx context.Context) error {
	var err error
	for attempt := range 3 {
		var rep mobile.SyncReport
		rep, err = p.e.Sync(ctx, nil)
		p.res.addSync(rep, err)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 500 * time.Millisecond)
	}
	return fmt.Errorf("sync: %w", err)
}

func (p *phone) check(_ *syncproto.Record, err error) {
	if err != nil {
		p.res.fail(fmt.Sprintf("phone %d: %s", p.i, err))
	}
}

func js(v any) json.RawMessage {
	b, _ := syncproto.Marshal(v)
	return b
}

func (p *phone) school() string { return p.schools[p.rng.IntN(len(p.schools))] }

var (
	categories = []string{"building", "fire", "electrical", "canteen_food", "dormitory", "traffic", "sports_equipment", "gatehouse_security"}
	severities = []string{"low", "medium", "high"}
	titles     = []string{"灭火器过期", "电线裸露", "楼梯扶手松动", "食堂留样不足", "宿舍门锁损坏", "校门口无减速带", "篮球架锈蚀", "门卫室无登记"}
)

func (p *phone) visit(date string) {
	school := p.school()
	r, err := p.e.Save(mobile.Draft{Kind: "visit", SchoolID: school, FormID: "visit.routine", FormVersion: 1, Values: map[string]json.RawMessage{
		"school_id": js(school), "kind": js("routine"), "announced": js(true), "lead_inspector_id": js(p.inspector),
		"visit_date": js(date), "theme": js("一月一主题：课后服务"), "problems": js("部分班级作业量偏大"),
		"suggestions": js("控制书面作业总量"), "highlights": js("课后服务覆盖全体学生"),
	}})
	if err != nil {
		p.check(nil, err)
		return
	}
	p.visits = append(p.visits, r.ID)
}

func (p *phone) hazard() {
	school := p.school()
	id := mobile.NewRecordID()
	path, err := p.photo()
	if err != nil {
		p.check(nil, err)
		return
	}
	att, _, err := p.e.NewAttachment("hazard", id, school, path, "image/jpeg")
	if err != nil {
		p.check(nil, err)
		return
	}
	k := p.rng.IntN(len(titles))
	_, err = p.e.Save(mobile.Draft{ID: id, Kind: "hazard", SchoolID: school, FormID: "hazard.report", FormVersion: 1, Values: map[string]json.RawMessage{
		"school_id": js(school), "source": js("inspector_visit"), "category": js(categories[k]), "location_desc": js("教学楼二层东侧"),
		"title": js(titles[k]), "description": js("现场检查发现：" + titles[k]), "severity": js(severities[p.rng.IntN(3)]),
		"photo_ids": js([]string{att.String()}),
	}})
	if err != nil {
		p.check(nil, err)
		return
	}
	p.hazards = append(p.hazards, id)
}

func (p *phone) eventPhoto() {
	if len(p.hazards) == 0 {
		return
	}
	path, err := p.photo()
	if err == nil {
		_, err = p.e.AttachPhotoTo(p.hazards[p.rng.IntN(len(p.hazards))], "events", path, "image/jpeg")
	}
	p.check(nil, err)
}

// photo writes a new synthetic JPEG of about PhotoKB kilobytes.
func (p *phone) photo() (string, error) {
	p.photoN++
	side := int(math.Sqrt(float64(p.cfg.PhotoKB*1024) / 1.1))
	b, err := mobiletest.JPEG(p.rng, side, side, 75)
	if err != nil {
		return "", err
	}
	path := filepath.Join(p.dir, fmt.Sprintf("IMG_%04d.jpg", p.photoN))
	return path, os.WriteFile(path, b, 0o644)
}

var chinaTime = time.FixedZone("CST", 8*60*60)
