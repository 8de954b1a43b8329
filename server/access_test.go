package server

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/syncproto"
)

// TestAccess is the authorization table: every principal × operation ×
// scope, and the answer (allowed, or the error's code).
func TestAccess(t *testing.T) {
	ctx := context.Background()
	const mine, theirs = "0192b000-0000-7000-8000-000000000103", "0192b000-0000-7000-8000-000000000101"
	a := &Access{Assigned: func(_ context.Context, inspector string) ([]string, error) {
		if inspector == "0192b000-0000-7000-8000-000000000201" {
			return []string{mine}, nil
		}
		return nil, nil
	}}
	dev := uuid.MustParse("0192b000-0000-7000-8000-0000000000d1")
	principals := map[string]Principal{
		"device":             {DeviceID: dev, Replica: dev, UserID: "u1", InspectorID: "0192b000-0000-7000-8000-000000000201", Roles: []string{RoleInspector}},
		"device-office-head": {DeviceID: dev, Replica: dev, UserID: "u1", InspectorID: "0192b000-0000-7000-8000-000000000201", Roles: []string{RoleInspector, RoleOfficeHead}},
		"unassigned-device":  {DeviceID: dev, Replica: dev, UserID: "u2", InspectorID: "0192b000-0000-7000-8000-000000000202", Roles: []string{RoleInspector}},
		"reviewer":           {UserID: "r1", Roles: []string{RoleOfficeReviewer}},
		"office-head":        {UserID: "h1", Roles: []string{RoleOfficeHead}},
		"admin":              {UserID: "admin", Roles: []string{RoleAdmin}, Automation: true},
		"nobody":             {UserID: "x"},
	}
	ok := ""
	type op struct {
		name string
		do   func(p Principal, scope string) error
	}
	ops := []op{
		{"see", func(p Principal, scope string) error { return a.CanSee(ctx, p, scope) }},
		{"write", func(p Principal, scope string) error {
			g, err := a.Grant(ctx, p)
			if err != nil {
				return err
			}
			if !g.Allows(scope) {
				return syncproto.Errorf(syncproto.EFORBIDDEN, "not granted")
			}
			return nil
		}},
		{"pull", func(p Principal, scope string) error {
			scopes, err := a.PullScopes(ctx, p)
			if err != nil {
				return err
			}
			if !slices.Contains(scopes, scope) {
				return syncproto.Errorf(syncproto.EFORBIDDEN, "not pulled")
			}
			return nil
		}},
		{"conflicts", func(p Principal, scope string) error { return a.ListConflicts(ctx, p, ConflictFilter{Scope: scope}) }},
		{"resolve", func(p Principal, scope string) error { return a.Resolve(ctx, p, scope) }},
		{"compact", func(p Principal, scope string) error { return a.Compact(p) }},
	}
	F := syncproto.EFORBIDDEN
	// want[principal][op] lists the answers for the scopes mine, theirs,
	// ref, and (conflicts only) every scope ("").
	want := map[string]map[string][]string{
		"device":             {"see": {ok, F, ok}, "write": {ok, F, F}, "pull": {ok, F, ok}, "conflicts": {ok, F, ok, syncproto.EINVALID}, "resolve": {F, F, F}, "compact": {F, F, F}},
		"device-office-head": {"see": {ok, F, ok}, "write": {ok, F, F}, "pull": {ok, F, ok}, "conflicts": {ok, F, ok, syncproto.EINVALID}, "resolve": {F, F, F}, "compact": {F, F, F}},
		"unassigned-device":  {"see": {F, F, ok}, "write": {F, F, F}, "pull": {F, F, ok}, "conflicts": {F, F, ok, syncproto.EINVALID}, "resolve": {F, F, F}, "compact": {F, F, F}},
		"reviewer":           {"see": {ok, ok, ok}, "write": {ok, ok, F}, "pull": {F, F, ok}, "conflicts": {ok, ok, ok, ok}, "resolve": {ok, ok, ok}, "compact": {F, F, F}},
		"office-head":        {"see": {ok, ok, ok}, "write": {ok, ok, ok}, "pull": {F, F, ok}, "conflicts": {ok, ok, ok, ok}, "resolve": {ok, ok, ok}, "compact": {F, F, F}},
		"admin":              {"see": {ok, ok, ok}, "write": {ok, ok, ok}, "pull": {F, F, ok}, "conflicts": {ok, ok, ok, ok}, "resolve": {ok, ok, ok}, "compact": {ok, ok, ok}},
		"nobody":             {"see": {F, F, ok}, "write": {F, F, F}, "pull": {F, F, ok}, "conflicts": {F, F, ok, syncproto.EINVALID}, "resolve": {F, F, F}, "compact": {F, F, F}},
	}
	scopes := []string{mine, theirs, RefScope, ""}
	for name, p := range principals {
		for _, o := range ops {
			for i, code := range want[name][o.name] {
				scope := scopes[i]
				t.Run(fmt.Sprintf("%s/%s/%d", name, o.name, i), func(t *testing.T) {
					err := o.do(p, scope)
					if got := syncproto.ErrorCode(err); got != code {
						t.Errorf("%s %s scope %q: %v, want %q", name, o.name, scope, err, code)
					}
				})
			}
		}
	}
}
