package main

import (
	"context"
	"fmt"

	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/google/uuid"
)

// provisioner makes an inspector with schools for one phone and returns
// a one-time enrollment code for it.
type provisioner interface {
	provision(ctx context.Context, i int, schools []string) (code, inspectorID string, err error)
}

// adminProvisioner uses the server's admin API (see mobiletest.Admin).
type adminProvisioner struct{ admin *mobiletest.Admin }

func (a *adminProvisioner) provision(ctx context.Context, i int, schools []string) (string, string, error) {
	ins, code, err := a.admin.Inspector(ctx, fmt.Sprintf("压测督学 %04d", i), schools)
	return code, ins, err
}

// fakeProvisioner makes codes on the in-process fake server.
type fakeProvisioner struct{ srv *mobiletest.Server }

func (f *fakeProvisioner) provision(ctx context.Context, i int, schools []string) (string, string, error) {
	ins := uuid.Must(uuid.NewV7()).String()
	code := fmt.Sprintf("LOAD-%06d-%s", i, ins[len(ins)-6:])
	f.srv.AddCode(code, ins)
	return code, ins, nil
}
