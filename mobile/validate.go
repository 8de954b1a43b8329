package mobile

// FormsValidator returns the Validator the apps use: the built-in form
// definitions of package forms, the same checks the server runs on push.
// Until package forms is wired in, it returns nil (no local validation;
// the server still validates).
func FormsValidator() Validator { return nil }
