// Package reports computes what a county supervision office reports every
// month (月通报、年考核) from the accepted records: quota completion per
// zone, inspector and school (visits per school per month, days on site,
// lesson-observation hours per semester, hazards past their deadline), the
// prefilled monthly feedback form (《责任督学挂牌督导每月反馈表》), and the
// ledgers (台账) exported as XLSX and CSV with Chinese headers.
//
// Every number carries the ids of the records it counts ("every number has
// a source"). The computation is pure: records come in through Store (the
// sync store's change log, read scope by scope with equality lookups) and
// Directory (inspectors and assignments), the server's time is passed in
// as a value to Load, Compute, Prefill and the exports, and they do no I/O
// beyond those interfaces and the io.Writer an export is written to. Only
// Service (what the HTTP layer calls) reads the server's clock, and only
// MediaThumbs (the photo appendix) fetches bytes, through the photo
// service's links. The dashboard's SVG charts are drawn by the subpackage
// chart.
//
// The quotas an office works by are a reference record (kind
// "report_settings", scope "ref") written through the sync push like a
// published form, so they are versioned, merged and pulled like every
// other record; Defaults are the domain's usual numbers (see
// docs/reports.md).
//
// This package may import server, syncproto and forms; it must not import
// Fiber, a database driver or the object store (server/api, server/mongo,
// server/minio wire it up).
package reports
