package main

// formFields returns the fields to prompt for when filling a form by
// hand. Without a definition the prompt falls back to key=value lines.
func formFields(formID string, version int) []promptField { return nil }
