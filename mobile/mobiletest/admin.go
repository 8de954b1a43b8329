package mobiletest

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/client"
)

// Admin provisions inspectors, their schools and enrollment codes through
// the real server's admin API (bearer admin token), with package client.
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

func (a *Admin) client() *client.Client {
	c := client.New(a.URL, a.Token)
	c.Client = a.Client
	if c.Client == nil {
		c.Client = &http.Client{Timeout: time.Minute}
	}
	return c
}

// Inspector creates an active inspector assigned to schools (from a month
// ago, open-ended) and returns its id and a one-time enrollment code.
func (a *Admin) Inspector(ctx context.Context, name string, schools []string) (inspectorID, code string, err error) {
	ins := a.newID()
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	start := now().AddDate(0, -1, 0).Format(time.DateOnly)
	ec, err := a.client().NewInspector(ctx, ins, client.Inspector{UserID: a.newID(), Name: name, Roles: []string{"inspector"}},
		schools, start, func(string) string { return a.newID() })
	return ins, ec.Code, err
}

// Code makes another one-time enrollment code for an inspector (one per
// phone).
func (a *Admin) Code(ctx context.Context, inspectorID string) (string, error) {
	ec, err := a.client().EnrollmentCode(ctx, inspectorID)
	return ec.Code, err
}
