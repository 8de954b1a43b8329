package main

import (
	"github.com/fieldsync/fieldsync/forms"
)

// formFields returns the top-level fields a person fills in by hand, from
// the built-in definition of the form: Chinese label with the English in
// brackets, required or not, and the choices. Groups, repeats, photos and
// server fields are left to the app (photos come with --photo). Without a
// definition the prompt falls back to key=value lines.
func formFields(formID string, version int) []promptField {
	def, ok := forms.BuiltinByID(formID, version)
	if !ok {
		return nil
	}
	var out []promptField
	for _, f := range def.Fields {
		switch f.Type {
		case forms.TypeGroup, forms.TypeRepeat, forms.TypePhoto, forms.TypeNote:
			continue
		}
		if f.Origin == forms.OriginServer || f.Calculation != "" || f.Key == "school_id" {
			continue
		}
		label := f.Label.ZH
		switch {
		case label == "":
			label = cmpOr(f.Label.EN, f.Key)
		case f.Label.EN != "":
			label += " (" + f.Label.EN + ")"
		}
		p := promptField{Key: f.Key, Label: label, Type: f.Type, Required: f.Required && f.Relevant == ""}
		for _, c := range def.Choices[f.ChoiceList] {
			p.Choices = append(p.Choices, c.Value)
		}
		out = append(out, p)
	}
	return out
}
