// Package browsertest runs browser tests against a real fieldsyncd on the
// test stack: headless Debian Chromium driven by Playwright (playwright-
// core from npm, with executablePath /usr/bin/chromium), installed on
// first use by deploy/browser.sh. It is meant for every browser test of
// the project: the inspector's app (webapp) and the office console alike.
//
// A test starts a server (Start), provisions what it needs through the
// admin API (Server.Do), and runs a Node script (Run) that requires
// harness.js, next to this file, for the browser, phone-sized contexts,
// CPU throttling, screenshots and accessibility checks. The script gets
// its input as JSON and writes its result as JSON; screenshots and other
// artifacts go to artifacts/browser/<TestName>/ at the repository root
// (git-ignored; FIELDSYNC_ARTIFACTS overrides the folder), kept after the
// test so a person can look at them.
//
// Like the other integration tests, a test whose servers are not
// configured is skipped, unless FIELDSYNC_REQUIRE_INTEGRATION is set (make
// test): then it fails. The package imports no server package: it runs
// the fieldsyncd binary.
package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/client"
	"github.com/fieldsync/fieldsync/internal/samples"
	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// Root returns the repository's root folder.
func Root(tb testing.TB) string {
	tb.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		tb.Fatalf("browsertest: go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// Server is a fieldsyncd process on its own database of the test stack.
type Server struct{ *testenv.Server }

// Start runs fieldsyncd (with env, KEY=VALUE, added to its environment)
// on a database of its own (dropped when the test
// ends) and the test MinIO bucket, and waits until it is ready.
func Start(t *testing.T, env ...string) *Server {
	t.Helper()
	return &Server{testenv.Fieldsyncd(t, 1, env...)[0]}
}

// Client returns a client of the server's API with the admin token.
func (s *Server) Client() *client.Client {
	c := client.New(s.URL, s.AdminToken)
	c.Client = &http.Client{Timeout: time.Minute}
	return c
}

// Do calls the server's API with the admin token: in (when not nil) is
// sent as JSON, and a 2xx answer is decoded into out (when not nil). It
// returns the answer's body.
func (s *Server) Do(ctx context.Context, method, path string, in, out any) ([]byte, error) {
	var raw json.RawMessage
	if err := s.Client().Do(ctx, method, path, in, &raw); err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if out != nil {
		return raw, json.Unmarshal(raw, out)
	}
	return raw, nil
}

// Inspector creates an active inspector with the given ids, assigned to
// schools from a month ago, and returns a one-time enrollment code.
func (s *Server) Inspector(ctx context.Context, inspectorID, userID, name string, schools ...string) (string, error) {
	start := time.Now().AddDate(0, -1, 0).Format(time.DateOnly)
	code, err := s.Client().NewInspector(ctx, inspectorID, client.Inspector{UserID: userID, Name: name, Roles: []string{"inspector"}}, schools, start,
		func(school string) string {
			return uuid.NewSHA1(uuid.NameSpaceOID, []byte("assignment "+inspectorID+" "+school)).String()
		})
	return code.Code, err
}

// Code makes a one-time enrollment code for an inspector.
func (s *Server) Code(ctx context.Context, inspectorID string) (string, error) {
	code, err := s.Client().EnrollmentCode(ctx, inspectorID)
	return code.Code, err
}

var emptied sync.Map // artifact folders emptied by this process

// Artifacts returns the test's artifact folder, emptied the first time a
// test asks for it in this process.
func Artifacts(t *testing.T) string {
	t.Helper()
	return artifactsNamed(t, t.Name())
}

func artifactsNamed(t *testing.T, name string) string {
	t.Helper()
	base := os.Getenv("FIELDSYNC_ARTIFACTS")
	if base == "" {
		base = filepath.Join(Root(t), "artifacts")
	}
	dir := filepath.Join(base, "browser", regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(name, "_"))
	if _, done := emptied.LoadOrStore(dir, true); !done {
		os.RemoveAll(dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Run runs the Node script at path (relative to the repository root) with
// input as JSON, and decodes what it writes as its result into output.
// The browser tooling is installed first if missing. The script's output
// is logged; a script that exits non-zero fails the test.
func Run(t *testing.T, script string, input, output any) {
	t.Helper()
	RunAs(t, t.Name(), script, input, output)
}

// RunAs is Run with the artifacts in artifacts/browser/<name>/ (emptied
// the first time in the process), for tests whose screenshots have a
// fixed home.
func RunAs(t *testing.T, name, script string, input, output any) {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	root := Root(t)
	dir := t.TempDir()
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	inPath, outPath := filepath.Join(dir, "input.json"), filepath.Join(dir, "output.json")
	if err := os.WriteFile(inPath, in, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "deploy", "browser.sh"), "node", filepath.Join(root, script))
	cmd.Env = append(os.Environ(), "BROWSERTEST_INPUT="+inPath, "BROWSERTEST_OUTPUT="+outPath,
		"BROWSERTEST_ARTIFACTS="+artifactsNamed(t, name), "BROWSERTEST_HARNESS="+filepath.Join(root, "internal", "browsertest", "harness.js"))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	err = cmd.Run()
	t.Logf("%s:\n%s", script, logs.String())
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	if output != nil {
		b, err := os.ReadFile(outPath)
		if err != nil {
			t.Fatalf("%s wrote no result: %v", script, err)
		}
		if err := json.Unmarshal(b, output); err != nil {
			t.Fatalf("%s: result: %v", script, err)
		}
	}
}

// SeedSamples pushes the domain brief's sample county (internal/samples:
// three schools, a visit, a lesson observation, a hazard with its whole
// history…) as the office, as "fieldsyncctl demo" does.
func (s *Server) SeedSamples(ctx context.Context) error {
	w := &syncproto.Writer{Replica: samples.OfficeReplica, Author: "office", Now: time.Date(2024, 11, 15, 9, 30, 0, 0, time.UTC)}
	recs, err := samples.Records(w)
	if err != nil {
		return err
	}
	req := syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: samples.OfficeReplica, BatchID: uuid.Must(uuid.NewV7())}
	for _, r := range recs {
		req.Changes = append(req.Changes, syncproto.Change{OpID: uuid.Must(uuid.NewV7()), Record: r})
	}
	var resp syncproto.PushResponse
	if _, err := s.Do(ctx, http.MethodPost, "/v1/sync/push", req, &resp); err != nil {
		return err
	}
	for i, r := range resp.Results {
		if r.Status == syncproto.StatusRejected {
			return fmt.Errorf("seed: %s %s rejected: %v", recs[i].Kind, recs[i].ID, r.Error)
		}
	}
	return nil
}
