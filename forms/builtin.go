package forms

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"sync"
)

// builtinFS holds the built-in definitions as data, one JSON file each, so
// that other implementations (the browser app) can read the same files.
//
//go:embed builtin/*.json
var builtinFS embed.FS

var builtins = sync.OnceValue(func() []*Definition {
	names, err := fs.Glob(builtinFS, "builtin/*.json")
	if err != nil {
		panic(err)
	}
	sort.Strings(names)
	defs := make([]*Definition, 0, len(names))
	for _, name := range names {
		b, err := builtinFS.ReadFile(name)
		if err != nil {
			panic(err)
		}
		d := new(Definition)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(d); err != nil {
			panic(fmt.Sprintf("forms: built-in definition %s: %v", name, err))
		}
		defs = append(defs, d)
	}
	return defs
})

// Builtin returns the built-in definitions, the defaults every office
// starts with: the routine visit record, lesson observation, the student
// burden and parent satisfaction questionnaires, the hazard report, hazard
// events and the monthly feedback form. The definitions are shared and must
// not be modified.
func Builtin() []*Definition {
	return append([]*Definition(nil), builtins()...)
}

// BuiltinByID returns the built-in definition with the given id and version.
func BuiltinByID(id string, version int) (*Definition, bool) {
	for _, d := range builtins() {
		if d.ID == id && d.Version == version {
			return d, true
		}
	}
	return nil, false
}
