package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/fieldsync/fieldsync/forms"
	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// envelope reports whether a member of a record file names the record
// rather than holds a field value: the sync envelope (forms.EnvelopeKeys)
// and the record header (kind, form_id, form_version), unless the form
// has a field of that name (a visit's "kind" is a field: routine,
// follow_up…).
func envelope(def *forms.Definition, key string) bool {
	if def != nil && slices.ContainsFunc(def.Fields, func(f forms.Field) bool { return f.Key == key }) {
		return false
	}
	return slices.Contains(forms.EnvelopeKeys, key) || key == "kind" || key == "form_id" || key == "form_version"
}

// kindOfForm is the record kind of a form: the id up to its first dot.
func kindOfForm(formID string) string {
	k, _, _ := strings.Cut(formID, ".")
	return k
}

func (m *Main) fill(ctx context.Context, args []string) error {
	fs := m.flags("fill")
	file := fs.String("json", "", "JSON file of field values (- for stdin); without it, prompt field by field")
	school := fs.String("school", "", "school id")
	recID := fs.String("id", "", "edit this record instead of creating one")
	version := fs.Int("version", 1, "form version")
	var photos stringList
	fs.Var(&photos, "photo", "photo for the form's photo field (repeatable)")
	photoField := fs.String("photo-field", "photo_ids", "the form field that lists the photos")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("fill FORM_ID [--json FILE] [--school ID] [--id RECORD_ID]")
	}
	formID := pos[0]
	d := mobile.Draft{FormID: formID, FormVersion: *version, Kind: kindOfForm(formID), SchoolID: *school, Values: map[string]json.RawMessage{}}
	var values map[string]json.RawMessage
	if *file != "" {
		values, err = m.readValues(*file)
	} else {
		values, err = m.prompt(formID, *version)
	}
	if err != nil {
		return err
	}
	def, _ := forms.BuiltinByID(formID, *version)
	for k, v := range values {
		switch {
		case k == "id" && *recID == "":
			var s string
			json.Unmarshal(v, &s)
			*recID = s
		case k == "school_id":
			if d.SchoolID == "" {
				json.Unmarshal(v, &d.SchoolID)
			}
			d.Values[k] = v
		case !envelope(def, k):
			d.Values[k] = v
		}
	}
	if *recID != "" {
		id, err := syncproto.ParseID(*recID)
		if err != nil {
			return err
		}
		d.ID = id
		if _, err := m.e.Record(id); err == nil {
			d.Kind, d.SchoolID, d.FormID, d.FormVersion = "", "", "", 0
		}
	}
	if d.ID == uuid.Nil && d.SchoolID != "" {
		d.Values["school_id"] = jsonOrString(d.SchoolID)
	}
	if len(photos) > 0 {
		// Photos first: a form may require them, and their attachment
		// records name the record, so it needs its id now.
		if d.ID == uuid.Nil {
			d.ID = mobile.NewRecordID()
		}
		var ids []string
		if raw := d.Values[*photoField]; raw != nil {
			json.Unmarshal(raw, &ids)
		}
		kind, school := d.Kind, d.SchoolID
		if r, err := m.e.Record(d.ID); err == nil {
			kind, school = r.Kind, r.SchoolID
			json.Unmarshal(r.Value(*photoField), &ids)
		}
		for _, ph := range photos {
			kept, err := m.keepCopy(ph)
			if err != nil {
				return err
			}
			att, _, err := m.e.NewAttachment(kind, d.ID, school, kept, "")
			if err != nil {
				return err
			}
			ids = append(ids, att.String())
		}
		b, _ := json.Marshal(ids)
		d.Values[*photoField] = b
	}
	r, err := m.e.Save(d)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "已保存 saved %s %s (%d fields), waiting for sync\n", r.Kind, r.ID, len(r.Fields))
	return nil
}

func (m *Main) readValues(file string) (map[string]json.RawMessage, error) {
	var data []byte
	var err error
	if file == "-" {
		data, err = readAll(m.Stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, err
	}
	var v map[string]json.RawMessage
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %w", file, err)
	}
	return v, nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// promptField is one field to ask for.
type promptField struct {
	Key      string
	Label    string // Chinese, with the English in brackets when known
	Type     string
	Required bool
	Choices  []string
}

// prompt asks for each field of the form. Without a definition for the
// form it asks for key=value lines until an empty line.
func (m *Main) prompt(formID string, version int) (map[string]json.RawMessage, error) {
	in := bufio.NewReader(m.Stdin)
	out := map[string]json.RawMessage{}
	fields := formFields(formID, version)
	if len(fields) == 0 {
		fmt.Fprintf(m.Stdout, "表单 %s v%d: 逐行输入 field=value，空行结束 (enter field=value lines, empty line to finish)\n", formID, version)
		for {
			fmt.Fprint(m.Stdout, "> ")
			line, ok := readLine(in)
			if !ok || line == "" {
				return out, nil
			}
			k, v, found := strings.Cut(line, "=")
			if !found {
				fmt.Fprintln(m.Stdout, "  需要 field=value")
				continue
			}
			out[strings.TrimSpace(k)] = jsonOrString(strings.TrimSpace(v))
		}
	}
	for _, f := range fields {
		req := ""
		if f.Required {
			req = " *"
		}
		choices := ""
		if len(f.Choices) > 0 {
			choices = " (" + strings.Join(f.Choices, "/") + ")"
		}
		for {
			fmt.Fprintf(m.Stdout, "%s%s%s: ", f.Label, req, choices)
			line, ok := readLine(in)
			if !ok {
				return out, nil
			}
			if line == "" {
				if f.Required {
					fmt.Fprintln(m.Stdout, "  必填 required")
					continue
				}
				break
			}
			switch f.Type {
			case "select_multiple", "text_list":
				parts := strings.Split(line, ",")
				for i := range parts {
					parts[i] = strings.TrimSpace(parts[i])
				}
				b, _ := json.Marshal(parts)
				out[f.Key] = b
			case "text", "select_one", "date", "time", "datetime":
				b, _ := json.Marshal(line)
				out[f.Key] = b
			default:
				out[f.Key] = jsonOrString(line)
			}
			break
		}
	}
	return out, nil
}
