package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/client"
	"github.com/fieldsync/fieldsync/syncproto"
)

// phone is an enrolled device of the bench's inspector.
type phone struct {
	id uuid.UUID
	c  *client.Client
}

// inspector provisions an inspector with schools through the admin API
// and enrolls the given devices.
func inspector(ctx context.Context, admin *client.Client, base string, hc *http.Client, userID string, schools []string, devices []uuid.UUID) ([]*phone, error) {
	id := uuid.Must(uuid.NewV7()).String()
	code, err := admin.NewInspector(ctx, id, client.Inspector{UserID: userID, Name: "压测督学"}, schools, time.Now().AddDate(0, 0, -30).Format(time.DateOnly),
		func(string) string { return uuid.Must(uuid.NewV7()).String() })
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	var out []*phone
	for i, dev := range devices {
		if i > 0 {
			if code, err = admin.EnrollmentCode(ctx, id); err != nil {
				return nil, err
			}
		}
		anon := &client.Client{BaseURL: base, Client: hc}
		en, err := anon.Enroll(ctx, client.EnrollRequest{Code: code.Code, DeviceID: dev, DeviceName: "fieldbench " + strconv.Itoa(i)})
		if err != nil {
			return nil, fmt.Errorf("enroll: %w", err)
		}
		tok := en.Token
		out = append(out, &phone{id: dev, c: &client.Client{BaseURL: base, Client: hc, Token: func() string { return tok }}})
	}
	return out, nil
}

// post sends body (gzipped when gz) and returns the answer's bytes.
func (p *phone) post(ctx context.Context, path string, body []byte, gz bool) ([]byte, error) {
	if !gz {
		b, _, err := p.c.Raw(ctx, http.MethodPost, path, "application/json", body)
		return b, err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(body)
	_ = zw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.c.BaseURL+path, &buf)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Authorization", "Bearer "+p.c.Token())
	resp, err := p.c.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, err = out.ReadFrom(resp.Body)
	if err == nil && resp.StatusCode >= 300 {
		err = fmt.Errorf("%s: %d %s", path, resp.StatusCode, out.Bytes())
	}
	return out.Bytes(), err
}

// push sends the docs in batches of batchSize from k phones at once
// (batch j from phones[j%k]; each doc must be written by that phone's
// device), as new records, or as edits of their field d.edit when
// update is set.
func push(ctx context.Context, phones []*phone, docs []*doc, update, gz bool) (measure, error) {
	t := newTimer()
	err := clients(len(phones), batches(docs, batchSize), func(c int, b []*doc) error {
		ph := phones[c]
		req := syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: ph.id, BatchID: uuid.Must(uuid.NewV7())}
		for _, d := range b {
			ch := syncproto.Change{OpID: uuid.Must(uuid.NewV7()), Record: d.rec}
			if update {
				w := &syncproto.Writer{Replica: syncproto.ReplicaID(d.device), Author: d.rec.CreatedBy, Clock: d.rec.MaxHLC(), Now: time.Now()}
				val, _ := json.Marshal(editValue(d))
				_, delta := syncproto.Set(d.rec, d.edit, val, w)
				ch.Record, ch.Base = delta, d.rec.Version()
			}
			req.Changes = append(req.Changes, ch)
		}
		body, err := syncproto.Marshal(req)
		if err != nil {
			return err
		}
		s := time.Now()
		ans, err := ph.post(ctx, "/v1/sync/push", body, gz)
		t.add(time.Since(s), len(b), body, ans)
		if err != nil {
			return err
		}
		var resp syncproto.PushResponse
		if err := json.Unmarshal(ans, &resp); err != nil {
			return err
		}
		for i, r := range resp.Results {
			if r.Status != syncproto.StatusApplied {
				e, _ := json.Marshal(r.Error)
				return fmt.Errorf("push: %s %s: %s %s", b[i].kind, b[i].id, r.Status, e)
			}
		}
		return nil
	})
	return t.done(), err
}

// pull catches up from an empty cursor, pages of batchSize.
func pull(ctx context.Context, ph *phone) (measure, error) {
	t := newTimer()
	cursor := ""
	for {
		body, _ := syncproto.Marshal(syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Cursor: cursor, Limit: batchSize})
		s := time.Now()
		ans, err := ph.post(ctx, "/v1/sync/pull", body, false)
		d := time.Since(s)
		if err != nil {
			return measure{}, err
		}
		var resp struct {
			Records []json.RawMessage `json:"records"`
			Cursor  string            `json:"cursor"`
			More    bool              `json:"more"`
		}
		if err := json.Unmarshal(ans, &resp); err != nil {
			return measure{}, err
		}
		t.add(d, len(resp.Records), body, ans)
		cursor = resp.Cursor
		if !resp.More {
			break
		}
	}
	return t.done(), nil
}
