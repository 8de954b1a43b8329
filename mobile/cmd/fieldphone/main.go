// Command fieldphone is a phone on the command line: it enrolls with a
// code, lists the inspector's schools and their open hazards, fills forms
// from a JSON file or by prompting field by field, attaches photos, syncs
// with a progress bar and works offline, keeping everything in one local
// database file like the app does. It is used for demos, tests and load.
//
//	fieldphone [--data phone.db] enroll --server URL --code CODE [--name NAME]
//	fieldphone schools
//	fieldphone hazards [--school ID]
//	fieldphone fill FORM_ID [--json file.json] [--school ID] [--id RECORD_ID] [--photo p.jpg]...
//	fieldphone show RECORD_ID
//	fieldphone event RECORD_ID TYPE [--note TEXT]
//	fieldphone attach RECORD_ID FIELD photo.jpg
//	fieldphone sync
//	fieldphone status
//	fieldphone problems
//	fieldphone resolve RECORD_ID FIELD VALUE_JSON
//	fieldphone retry|discard PROBLEM_ID
//	fieldphone offline on|off
//
// It uses package mobile only; like all of mobile it must not import
// server or Fiber.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "fieldphone:", describe(err))
		os.Exit(1)
	}
}

// describe renders an error for the person at the terminal, with field
// messages one per line.
func describe(err error) string {
	var pe *syncproto.Error
	if errors.As(err, &pe) && len(pe.Fields) > 0 {
		var b strings.Builder
		b.WriteString(pe.Message)
		keys := make([]string, 0, len(pe.Fields))
		for k := range pe.Fields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "\n  %s: %s", k, pe.Fields[k])
		}
		return b.String()
	}
	return err.Error()
}

// Main is the program, as a value tests can run.
type Main struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Options are passed to mobile.Open (tests set a transport or clock).
	Options mobile.Options

	data string
	e    *mobile.Engine
}

const usage = `usage: fieldphone [--data phone.db] COMMAND [ARGS]

commands:
  enroll --server URL --code CODE [--name NAME]   enroll this phone (一次性注册码)
  schools                                          assigned schools (负责学校)
  hazards [--school ID]                            open hazards (未销号隐患)
  fill FORM_ID [--json FILE] [--school ID] [--id RECORD_ID] [--photo FILE]...
                                                   fill a form from a file or by prompts
  show RECORD_ID                                   one record as JSON
  event RECORD_ID TYPE [--note TEXT]               add a hazard event
  attach RECORD_ID FIELD PHOTO                     attach a photo to a record
  sync                                             push, pull and upload photos
  status                                           what waits to be synced
  problems                                         rejected changes and conflicts
  resolve RECORD_ID FIELD VALUE_JSON               settle a conflict
  retry PROBLEM_ID | discard PROBLEM_ID            answer a rejected change
  offline on|off                                   switch sync off or on

The database is --data, or $FIELDPHONE_DATA, or ./fieldphone.db.
`

// Run runs one command.
func (m *Main) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fieldphone", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() { fmt.Fprint(m.Stderr, usage) }
	def := cmpOr(m.Getenv("FIELDPHONE_DATA"), "fieldphone.db")
	fs.StringVar(&m.data, "data", def, "phone database file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	run, ok := map[string]func(context.Context, []string) error{
		"enroll": m.enroll, "schools": m.schools, "hazards": m.hazards, "fill": m.fill, "show": m.show,
		"event": m.event, "attach": m.attach, "sync": m.sync, "status": m.status, "problems": m.problems,
		"resolve": m.resolve, "retry": m.retry, "discard": m.discard, "offline": m.offline,
	}[cmd]
	if !ok {
		fs.Usage()
		return fmt.Errorf("unknown command %q", cmd)
	}
	opts := m.Options
	if opts.Validator == nil {
		opts.Validator = mobile.FormsValidator(opts.Now)
	}
	e, err := mobile.Open(m.data, opts)
	if err != nil {
		return err
	}
	m.e = e
	defer e.Close()
	return run(ctx, rest)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (m *Main) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	return fs
}

// parse parses flags that may come before or after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func (m *Main) enroll(ctx context.Context, args []string) error {
	fs := m.flags("enroll")
	server := fs.String("server", "", "server URL")
	code := fs.String("code", "", "one-time enrollment code from the office")
	host, _ := os.Hostname()
	name := fs.String("name", "fieldphone "+host, "device name shown to the office")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *server == "" || *code == "" {
		return errors.New("enroll needs --server and --code")
	}
	en, err := m.e.Enroll(ctx, *server, *code, *name)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "已注册 enrolled: device %s for %s (%s)\n", en.DeviceID, cmpOr(en.Name, en.UserID), en.ServerURL)
	return nil
}

// str returns a field's winning value as text.
func str(r *syncproto.Record, field string) string {
	raw := r.Value(field)
	if raw == nil {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

func (m *Main) schools(ctx context.Context, args []string) error {
	schools, err := m.e.Records(mobile.Filter{Kind: "school"})
	if err != nil {
		return err
	}
	if len(schools) == 0 {
		fmt.Fprintln(m.Stdout, "没有学校 no schools yet: sync first")
		return nil
	}
	hz, err := m.e.Records(mobile.Filter{Kind: "hazard"})
	if err != nil {
		return err
	}
	open := map[string]int{}
	for _, h := range hz {
		if isOpen(h) {
			open[h.SchoolID]++
		}
	}
	for _, s := range schools {
		fmt.Fprintf(m.Stdout, "%s  %s  隐患 open hazards: %d\n", s.ID, cmpOr(str(s, "name"), str(s, "short_name")), open[s.ID.String()])
	}
	return nil
}

// closedStates are hazard states that need no more field work.
var closedStates = []string{"closed", "cancelled", "rejected", "duplicate", "verified"}

// hazardStatus is the hazard's status folded from its events, as the
// server folds it (the phone's own unsynced events last).
func hazardStatus(h *syncproto.Record) string { return syncproto.FoldHazard(h, time.Now()).Status }

func isOpen(h *syncproto.Record) bool { return !slices.Contains(closedStates, hazardStatus(h)) }

func (m *Main) hazards(ctx context.Context, args []string) error {
	fs := m.flags("hazards")
	school := fs.String("school", "", "only this school")
	all := fs.Bool("all", false, "closed hazards too")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	hz, err := m.e.Records(mobile.Filter{Kind: "hazard", SchoolID: *school})
	if err != nil {
		return err
	}
	n := 0
	for _, h := range hz {
		if !*all && !isOpen(h) {
			continue
		}
		n++
		fmt.Fprintf(m.Stdout, "%s  [%s] %s  %s  %s  截止 deadline %s  事件 events %d\n", h.ID, str(h, "severity"), hazardStatus(h),
			str(h, "title"), str(h, "location_desc"), cmpOr(str(h, "deadline"), "-"), len(h.Items["events"]))
	}
	if n == 0 {
		fmt.Fprintln(m.Stdout, "没有未销号隐患 no open hazards")
	}
	return nil
}

func (m *Main) show(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return errors.New("show RECORD_ID")
	}
	id, err := syncproto.ParseID(args[0])
	if err != nil {
		return err
	}
	r, err := m.e.Record(id)
	if err != nil {
		return err
	}
	out := map[string]any{"id": r.ID, "kind": r.Kind, "school_id": r.SchoolID, "form_id": r.FormID, "form_version": r.FormVersion,
		"rev": r.Rev, "created_at": r.CreatedAt, "conflicts": r.ConflictFields()}
	values := map[string]json.RawMessage{}
	for k := range r.Fields {
		values[k] = r.Value(k)
	}
	out["values"] = values
	if len(r.Items) > 0 {
		items := map[string][]json.RawMessage{}
		for c, its := range r.Items {
			for _, it := range its {
				items[c] = append(items[c], it.Data)
			}
		}
		out["items"] = items
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Fprintln(m.Stdout, string(b))
	return nil
}

func (m *Main) event(ctx context.Context, args []string) error {
	fs := m.flags("event")
	note := fs.String("note", "", "note")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return errors.New("event RECORD_ID TYPE [--note TEXT]")
	}
	id, err := syncproto.ParseID(pos[0])
	if err != nil {
		return err
	}
	st, _ := m.e.Status()
	ev := map[string]any{"type": pos[1], "occurred_at": time.Now().Format(time.RFC3339), "actor_id": st.UserID, "actor_role": "inspector"}
	if *note != "" {
		ev["note"] = *note
	}
	b, _ := json.Marshal(ev)
	itemID, err := m.e.Append(id, "events", b)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "已记录 event %s added\n", itemID)
	return nil
}

// photoDir is where attached photos are copied, so that the original is
// kept until the server confirms it whatever happens to the source file.
func (m *Main) photoDir() string { return m.data + ".photos" }

func (m *Main) attach(ctx context.Context, args []string) error {
	if len(args) != 3 {
		return errors.New("attach RECORD_ID FIELD PHOTO")
	}
	id, err := syncproto.ParseID(args[0])
	if err != nil {
		return err
	}
	kept, err := m.keepCopy(args[2])
	if err != nil {
		return err
	}
	ref, err := m.e.AttachPhotoTo(id, args[1], kept, "")
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "已附加照片 photo %s (%d bytes) queued for upload\n", ref.SHA256[:12], ref.Size)
	return nil
}

func (m *Main) keepCopy(src string) (string, error) {
	if err := os.MkdirAll(m.photoDir(), 0o700); err != nil {
		return "", err
	}
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(m.photoDir(), "incoming-*")
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		return "", err
	}
	tmp.Close()
	dst := filepath.Join(m.photoDir(), uuid.NewString()+strings.ToLower(filepath.Ext(src)))
	return dst, os.Rename(tmp.Name(), dst)
}

func (m *Main) sync(ctx context.Context, args []string) error {
	bar := &progressBar{w: m.Stderr}
	rep, err := m.e.Sync(ctx, bar.update)
	bar.done()
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "同步完成 synced: pushed %d (applied %d, merged %d, conflicts %d, duplicates %d, rejected %d), pulled %d, photos %d (%.1f KB)\n",
		rep.Pushed, rep.Applied, rep.Merged, rep.Conflicts, rep.Duplicates, rep.Rejected, rep.Pulled, rep.Photos, float64(rep.PhotoBytes)/1024)
	if rep.Rejected+rep.Conflicts > 0 {
		fmt.Fprintln(m.Stdout, "有问题需要处理 see: fieldphone problems")
	}
	return nil
}

// progressBar draws sync progress on one terminal line.
type progressBar struct {
	w     io.Writer
	phase string
	drawn bool
}

var phaseNames = map[string]string{mobile.PhasePush: "上传记录 push ", mobile.PhasePull: "下载更新 pull ", mobile.PhasePhotos: "上传照片 photos"}

func (b *progressBar) update(p mobile.Progress) {
	if b.drawn && p.Phase != b.phase {
		fmt.Fprintln(b.w)
	}
	b.phase, b.drawn = p.Phase, true
	const width = 30
	if p.Total <= 0 {
		fmt.Fprintf(b.w, "\r%s %d", phaseNames[p.Phase], p.Done)
		return
	}
	n := int(min(p.Done, p.Total) * width / p.Total)
	fmt.Fprintf(b.w, "\r%s [%s%s] %d/%d", phaseNames[p.Phase], strings.Repeat("#", n), strings.Repeat(".", width-n), p.Done, p.Total)
}

func (b *progressBar) done() {
	if b.drawn {
		fmt.Fprintln(b.w)
	}
}

func (m *Main) status(ctx context.Context, args []string) error {
	st, err := m.e.Status()
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "设备 device:     %s\n", st.DeviceID)
	if st.Enrolled {
		fmt.Fprintf(m.Stdout, "服务器 server:   %s (%s)\n", st.ServerURL, cmpOr(st.Name, st.UserID))
	} else {
		fmt.Fprintln(m.Stdout, "服务器 server:   not enrolled (fieldphone enroll)")
	}
	mode := "online"
	if st.Offline {
		mode = "离线 offline"
	}
	fmt.Fprintf(m.Stdout, "模式 mode:       %s\n", mode)
	fmt.Fprintf(m.Stdout, "记录 records:    %d\n", st.Records)
	fmt.Fprintf(m.Stdout, "待上传 outbox:   %d changes (%d sent, awaiting answer)\n", st.Outbox, st.InFlight)
	fmt.Fprintf(m.Stdout, "照片 photos:     %d waiting (%.1f KB)\n", st.Photos, float64(st.PhotoBytes)/1024)
	fmt.Fprintf(m.Stdout, "问题 problems:   %d rejected, %d conflicts\n", st.Rejected, st.Conflicts)
	if ls := st.LastSync; ls != nil {
		res := "ok"
		if ls.Error != "" {
			res = ls.Error
		}
		fmt.Fprintf(m.Stdout, "上次同步 last sync: %s, %s\n", ls.Started.Local().Format("2006-01-02 15:04"), res)
	}
	return nil
}

func (m *Main) problems(ctx context.Context, args []string) error {
	probs, err := m.e.Problems()
	if err != nil {
		return err
	}
	if len(probs) == 0 {
		fmt.Fprintln(m.Stdout, "没有问题 no problems")
		return nil
	}
	for _, p := range probs {
		switch p.Type {
		case mobile.ProblemRejected:
			fmt.Fprintf(m.Stdout, "被拒绝 rejected %s: %s %s: %s (%s)\n", p.ID, p.RecordKind, p.RecordID, p.Message, p.Code)
			for k, v := range p.FieldErrors {
				fmt.Fprintf(m.Stdout, "    %s: %s\n", k, v)
			}
		case mobile.ProblemConflict:
			fmt.Fprintf(m.Stdout, "冲突 conflict: %s %s\n", p.RecordKind, p.RecordID)
			for _, f := range p.Fields {
				for i, v := range p.Versions[f] {
					fmt.Fprintf(m.Stdout, "    %s #%d: %s (by %s at %s)\n", f, i+1, v.Value, cmpOr(v.Author, v.Device), v.At.Local().Format("2006-01-02 15:04"))
				}
			}
		}
	}
	return nil
}

func (m *Main) resolve(ctx context.Context, args []string) error {
	if len(args) != 3 {
		return errors.New("resolve RECORD_ID FIELD VALUE_JSON")
	}
	id, err := syncproto.ParseID(args[0])
	if err != nil {
		return err
	}
	return m.e.ResolveConflict(id, args[1], jsonOrString(args[2]))
}

func (m *Main) retry(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return errors.New("retry PROBLEM_ID")
	}
	return m.e.RetryRejected(args[0])
}

func (m *Main) discard(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return errors.New("discard PROBLEM_ID")
	}
	return m.e.DiscardRejected(args[0])
}

func (m *Main) offline(ctx context.Context, args []string) error {
	if len(args) != 1 || (args[0] != "on" && args[0] != "off") {
		return errors.New("offline on|off")
	}
	if err := m.e.SetOffline(args[0] == "on"); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "离线模式 offline: %s\n", args[0])
	return nil
}

// jsonOrString returns s if it is JSON, else s as a JSON string, so that
// typing 高 or "高" both work.
func jsonOrString(s string) json.RawMessage {
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s)
	return b
}

// readLine reads one line from r, trimmed.
func readLine(r *bufio.Reader) (string, bool) {
	line, err := r.ReadString('\n')
	if err != nil && line == "" {
		return "", false
	}
	return strings.TrimSpace(line), true
}

func readAll(r io.Reader) ([]byte, error) { return io.ReadAll(r) }
