package mobiletest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"
)

// Admin provisions inspectors, their schools and enrollment codes through
// the real server's admin API (bearer admin token):
//
//	PUT  /v1/admin/inspectors/{id}                  {user_id, name, roles, active}
//	PUT  /v1/admin/assignments/{id}                 {inspector_id, school_id, role, start_date}
//	POST /v1/admin/inspectors/{id}/enrollment-codes → {code, expires_at}
type Admin struct {
	URL, Token string
	Client     *http.Client // nil: a client with a one-minute timeout
	// NewID makes the ids of inspectors, users and assignments, and Now
	// dates the assignments. Nil means random UUIDv7s and the real clock;
	// a simulation sets its own (Sim.IDs, Sim.Clock) to replay from its
	// seed.
	NewID func() uuid.UUID
	Now   func() time.Time
}

func (a *Admin) newID() string {
	if a.NewID != nil {
		return a.NewID().String()
	}
	return uuid.Must(uuid.NewV7()).String()
}

func (a *Admin) call(ctx context.Context, method, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, a.URL+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.Token)
	c := a.Client
	if c == nil {
		c = &http.Client{Timeout: time.Minute}
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(body))
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// Inspector creates an active inspector assigned to schools (from a month
// ago, open-ended) and returns its id and a one-time enrollment code.
func (a *Admin) Inspector(ctx context.Context, name string, schools []string) (inspectorID, code string, err error) {
	ins, user := a.newID(), a.newID()
	err = a.call(ctx, http.MethodPut, "/v1/admin/inspectors/"+ins, map[string]any{
		"user_id": user, "name": name, "roles": []string{"inspector"}, "active": true,
	}, nil)
	if err != nil {
		return "", "", err
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	start := now().AddDate(0, -1, 0).Format(time.DateOnly)
	for _, s := range schools {
		err := a.call(ctx, http.MethodPut, "/v1/admin/assignments/"+a.newID(), map[string]any{
			"inspector_id": ins, "school_id": s, "role": "responsibility", "start_date": start,
		}, nil)
		if err != nil {
			return "", "", err
		}
	}
	code, err = a.Code(ctx, ins)
	return ins, code, err
}

// Code makes another one-time enrollment code for an inspector (one per
// phone).
func (a *Admin) Code(ctx context.Context, inspectorID string) (string, error) {
	var out struct {
		Code string `json:"code"`
	}
	err := a.call(ctx, http.MethodPost, "/v1/admin/inspectors/"+inspectorID+"/enrollment-codes", map[string]any{}, &out)
	return out.Code, err
}
