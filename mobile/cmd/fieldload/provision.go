package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/google/uuid"
)

// provisioner makes an inspector with schools for one phone and returns
// a one-time enrollment code for it.
type provisioner interface {
	provision(ctx context.Context, i int, schools []string) (code, inspectorID string, err error)
}

// adminProvisioner uses the server's admin API:
//
//	PUT  /v1/admin/inspectors/{id}                  {user_id, name, roles, active}
//	PUT  /v1/admin/assignments/{id}                 {inspector_id, school_id, role, start_date}
//	POST /v1/admin/inspectors/{id}/enrollment-codes → {code, expires_at}
type adminProvisioner struct {
	url, token string
	client     *http.Client
}

func (a *adminProvisioner) call(ctx context.Context, method, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, a.url+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.client.Do(req)
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

func (a *adminProvisioner) provision(ctx context.Context, i int, schools []string) (string, string, error) {
	ins, user := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
	err := a.call(ctx, http.MethodPut, "/v1/admin/inspectors/"+ins, map[string]any{
		"user_id": user, "name": fmt.Sprintf("压测督学 %04d", i), "roles": []string{"inspector"}, "active": true,
	}, nil)
	if err != nil {
		return "", "", err
	}
	start := time.Now().AddDate(0, -1, 0).Format(time.DateOnly)
	for _, s := range schools {
		err := a.call(ctx, http.MethodPut, "/v1/admin/assignments/"+uuid.Must(uuid.NewV7()).String(), map[string]any{
			"inspector_id": ins, "school_id": s, "role": "responsibility", "start_date": start,
		}, nil)
		if err != nil {
			return "", "", err
		}
	}
	var code struct {
		Code string `json:"code"`
	}
	if err := a.call(ctx, http.MethodPost, "/v1/admin/inspectors/"+ins+"/enrollment-codes", map[string]any{}, &code); err != nil {
		return "", "", err
	}
	return code.Code, ins, nil
}

// fakeProvisioner makes codes on the in-process fake server.
type fakeProvisioner struct{ srv *mobiletest.Server }

func (f *fakeProvisioner) provision(ctx context.Context, i int, schools []string) (string, string, error) {
	ins := uuid.Must(uuid.NewV7()).String()
	code := fmt.Sprintf("LOAD-%06d-%s", i, ins[len(ins)-6:])
	f.srv.AddCode(code, ins)
	return code, ins, nil
}
