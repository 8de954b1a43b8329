// Package forms holds versioned form definitions and the one validation
// engine that the phone and the server both run on field records.
//
// A Definition describes the fields of one kind of record (a visit, a lesson
// observation, a questionnaire response, a hazard, a hazard event, a monthly
// feedback form): their types, which are required, their constraints, skip
// logic (relevance), calculated values and choice lists. A published version
// never changes, and every record names the version it was filled with.
//
// The same code answers three questions on both sides of the sync:
//
//   - Definition.Check: is this definition fit to publish?
//   - Definition.Validate: is this record valid for this definition? The
//     phone asks before a record enters its outbox; the server asks again on
//     push, so a bad record is stopped on the phone, not a week later.
//   - Definition.Compute: what are the calculated values (a lesson's total
//     and band), and which values must be cleared because they are not
//     relevant?
//
// Rules are written in a small expression language, a documented subset of
// github.com/expr-lang/expr (see EXPRESSIONS.md next to this file), because a
// browser app must later evaluate the same rules exactly as Go does. The files
// in testdata/conformance are the contract that every implementation must
// pass.
//
// Built-in definitions (Builtin, BuiltinByID) are JSON files embedded from
// builtin/, so that other implementations can read the same data.
// ImportXLSFormFile turns an XLSForm workbook (with the files published
// with it) into a Definition, and ExportXLSForm writes one back; XLSFORM.md
// next to this file says what is supported. The import and export (the
// files xlsform*.go and xpath.go) are left out of js/wasm builds by a build
// constraint: the web app's core validates records against published
// definitions and never reads a workbook, and excelize would add 1.2 MB
// (gzipped) to what a phone downloads. FillMeta fills in the metadata a
// phone knows (start, end, deviceid…).
//
// The package is pure: it does no file or network I/O and never reads the
// clock (a rule that needs today's date gets it from Env). It must not import
// Fiber, database or storage drivers, or any package of this module other
// than syncproto; in particular never server or mobile, which both import it.
package forms
