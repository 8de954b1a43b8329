package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/syncproto"
)

// Review of the inspectors' records (DOMAIN §6.6): a visit, a lesson
// observation, a questionnaire or a monthly feedback arrives submitted;
// the office returns it with a comment (required) or accepts it. A
// decision is an item of the record's append-only "reviews" collection,
// written by the session's replica and pushed through the Syncer, so the
// comments reach the author's phone on the next pull and are never
// edited; the state is folded from them: the last decision, except that
// a returned record the author has edited since is submitted again.

// Review states.
const (
	ReviewSubmitted = "submitted"
	ReviewReturned  = "returned"
	ReviewAccepted  = "accepted"
)

// ReviewCollection is the items collection of review decisions.
const ReviewCollection = "reviews"

// ReviewedKinds are the record kinds the office reviews.
var ReviewedKinds = []string{"visit", "lesson_observation", "questionnaire_response", "monthly_feedback"}

// ReviewItem is one decision or comment of the "reviews" collection.
type ReviewItem struct {
	Type       string    `json:"type"` // returned, accepted, comment
	Comment    string    `json:"comment,omitempty"`
	ActorID    string    `json:"actor_id"`
	ActorName  string    `json:"actor_name,omitempty"`
	ActorRole  string    `json:"actor_role"`
	OccurredAt time.Time `json:"occurred_at"`
}

// ReviewState is a record's review folded from its "reviews" items.
type ReviewState struct {
	State string       `json:"state"`
	Items []ReviewItem `json:"items"`
}

// FoldReview folds a record's review: items in arrival order (server
// time, then clock stamp, then id); the last returned or accepted
// decides, and a return is undone by any field the author wrote after
// it (the author resubmits by editing).
func FoldReview(r *syncproto.Record) ReviewState {
	st := ReviewState{State: ReviewSubmitted, Items: []ReviewItem{}}
	items := slices.Clone(r.Items[ReviewCollection])
	slices.SortFunc(items, func(a, b syncproto.Item) int {
		switch {
		case a.ServerReceivedAt != nil && b.ServerReceivedAt != nil && !a.ServerReceivedAt.Equal(*b.ServerReceivedAt):
			return a.ServerReceivedAt.Compare(*b.ServerReceivedAt)
		case (a.ServerReceivedAt == nil) != (b.ServerReceivedAt == nil):
			if a.ServerReceivedAt != nil {
				return -1
			}
			return 1
		}
		if c := a.HLC.Compare(b.HLC); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	var decided syncproto.HLC
	for _, it := range items {
		var ri ReviewItem
		if json.Unmarshal(it.Data, &ri) != nil || !syncproto.IsOfficeRole(ri.ActorRole) {
			continue
		}
		st.Items = append(st.Items, ri)
		if ri.Type == ReviewReturned || ri.Type == ReviewAccepted {
			st.State, decided = ri.Type, it.HLC
		}
	}
	if st.State == ReviewReturned {
		for _, f := range r.Fields {
			for _, v := range f {
				if v.Author == r.CreatedBy && v.HLC.Compare(decided) > 0 {
					st.State = ReviewSubmitted
				}
			}
		}
	}
	return st
}

// Review records a decision on a record: returned (comment required) or
// accepted, or a comment, as the principal, pushed through the Syncer.
func (d *Desk) Review(ctx context.Context, p Principal, scope string, id uuid.UUID, typ, comment string) (syncproto.Result, error) {
	role := actingRole(p)
	if p.IsDevice() || role == "" {
		return syncproto.Result{}, syncproto.Errorf(syncproto.EFORBIDDEN, "只有督导室人员可以审核记录。Only the office reviews records.")
	}
	if err := d.Access.CanSee(ctx, p, scope); err != nil || scope == RefScope {
		return syncproto.Result{}, syncproto.Errorf(syncproto.EFORBIDDEN, "该学校不在您的责任范围内。This school is outside your scope.")
	}
	comment = strings.TrimSpace(comment)
	switch {
	case typ != ReviewReturned && typ != ReviewAccepted && typ != "comment":
		return syncproto.Result{}, syncproto.FieldError("未知操作。Unknown review action.", map[string]string{"action": "returned, accepted or comment"})
	case comment == "" && typ != ReviewAccepted:
		return syncproto.Result{}, syncproto.FieldError("退回或留言须填写意见。A comment is required.", map[string]string{"comment": "请填写意见 (required)"})
	}
	rec, err := d.Sync.Record(ctx, scope, id)
	if err != nil {
		return syncproto.Result{}, err
	}
	if !slices.Contains(ReviewedKinds, rec.Kind) {
		return syncproto.Result{}, syncproto.Errorf(syncproto.EINVALID, "%s 不需要审核。Records of kind %s are not reviewed.", rec.Kind, rec.Kind)
	}
	cur := FoldReview(rec)
	if typ != "comment" && cur.State != ReviewSubmitted {
		return syncproto.Result{}, syncproto.Errorf(syncproto.ECONFLICT, "记录当前为「%s」，只能审核已提交的记录。Only a submitted record is returned or accepted.", reviewNames[cur.State])
	}
	now := d.Now().UTC().Truncate(time.Millisecond)
	data, err := syncproto.Marshal(ReviewItem{Type: typ, Comment: comment, ActorID: p.UserID, ActorName: p.Name, ActorRole: role, OccurredAt: now})
	if err != nil {
		return syncproto.Result{}, err
	}
	w := &syncproto.Writer{Replica: p.Replica, Author: p.UserID, Now: now}
	_, delta := syncproto.Append(rec, ReviewCollection, uuid.Must(uuid.NewV7()).String(), data, w)
	opID := uuid.Must(uuid.NewV7())
	resp, err := d.Sync.Push(ctx, p, syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: p.Replica, BatchID: uuid.Must(uuid.NewV7()),
		Changes: []syncproto.Change{{OpID: opID, Record: delta, Base: rec.Version()}}}, nil)
	if err != nil {
		return syncproto.Result{}, err
	}
	res := resp.Results[0]
	if res.Status == syncproto.StatusRejected {
		return res, res.Error
	}
	if d.Audit != nil {
		err := d.Audit.Append(ctx, []AuditEntry{{
			Key: "decision/" + opID.String(), Actor: p.UserID, ActorName: p.Name, Role: role, Session: p.Session,
			Action: "review." + typ, RecordID: id.String(), Kind: rec.Kind, Scope: scope, Rev: res.Rev, Detail: comment,
		}})
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

var reviewNames = map[string]string{ReviewSubmitted: "已提交", ReviewReturned: "已退回", ReviewAccepted: "已通过"}

// ReviewNames are the review states in Chinese.
func ReviewNames() map[string]string { return reviewNames }

// DayItem is one record made at a school on a visit's day.
type DayItem struct {
	ID, Kind, Title, Detail string
	Hazard                  bool
}

// VisitDay returns what was recorded at a visit's school on the visit's
// day (the visit_date, or the day it was made, in China) besides the
// visit: lesson observations with their rubric total and band,
// questionnaires, monthly forms, and the hazards reported.
func (d *Desk) VisitDay(ctx context.Context, p Principal, visit *syncproto.Record) ([]DayItem, error) {
	day := str(visit, "visit_date")
	if day == "" {
		day = visit.CreatedAt.In(syncproto.ChinaTime).Format(time.DateOnly)
	}
	f, err := d.Filter(ctx, p)
	if err != nil {
		return nil, err
	}
	sameDay := func(t time.Time) bool { return t.In(syncproto.ChinaTime).Format(time.DateOnly) == day }
	rows, err := d.Read.Records(ctx, RecordFilter{AllSchools: f.AllSchools, Schools: f.Schools, School: visit.SchoolID, Limit: 500})
	if err != nil {
		return nil, err
	}
	var out []DayItem
	for _, r := range rows {
		if r.ID == visit.ID.String() || !sameDay(r.CreatedAt) {
			continue
		}
		it := DayItem{ID: r.ID, Kind: r.Kind, Title: r.Title}
		if r.Kind == "lesson_observation" {
			if rec, err := d.Sync.Record(ctx, r.SchoolID, uuidOrNil(r.ID)); err == nil {
				it.Title = strings.TrimSpace(str(rec, "subject") + " " + str(rec, "topic") + " " + str(rec, "teacher_name"))
				it.Detail = strings.TrimSpace(fmt.Sprintf("总分 %s %s", rec.Value("total_score"), str(rec, "grade_band")))
			}
		}
		out = append(out, it)
	}
	f.School, f.Limit = visit.SchoolID, 500
	hz, err := d.Read.Hazards(ctx, f)
	if err != nil {
		return nil, err
	}
	for _, h := range hz {
		if sameDay(h.ReportedAt) {
			out = append(out, DayItem{ID: h.ID, Kind: "hazard", Title: h.Title, Detail: StatusNames[h.Status], Hazard: true})
		}
	}
	return out, nil
}
