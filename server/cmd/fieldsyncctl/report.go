package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/fieldsync/fieldsync/client"
)

const reportUsage = `usage:
  fieldsyncctl report quotas PERIOD [-zone ID] [-school ID] [-inspector ID] [-json]
  fieldsyncctl report feedback MONTH [-zone ID] [-school ID] [-inspector ID]
  fieldsyncctl report export LEDGER PERIOD [-format xlsx|csv] [-o FILE] [-photos -school ID] [-zone ID] [-inspector ID]
  fieldsyncctl report chart CHART PERIOD [-o FILE.svg] [-zone ID] [-school ID] [-inspector ID]
  fieldsyncctl report settings [QUOTAS.json]
PERIOD is a month (2026-11), a range (2026-09-01..2026-12-31) or a semester (2026-2027-1);
LEDGER is hazards, feedback, visits, observations or questionnaires;
CHART is completion-zones, completion-inspectors, hazards-severity, hazards-status, overdue or visits`

// report runs the report commands: quota completion (a table, or the
// API's JSON), the month's prefilled feedback forms, a ledger saved as
// XLSX or CSV, and the office's quotas.
func report(ctx context.Context, c *client.Client, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(reportUsage)
	}
	cmd, args := args[0], args[1:]
	if cmd == "settings" {
		var resp json.RawMessage
		var err error
		if len(args) > 0 {
			b, rerr := os.ReadFile(args[0])
			if rerr != nil {
				return rerr
			}
			resp, err = c.PutReportSettings(ctx, b)
		} else {
			resp, err = c.ReportSettings(ctx)
		}
		if err != nil {
			return err
		}
		return printJSON(out, resp)
	}
	fs := flag.NewFlagSet("report "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	zone := fs.String("zone", "", "zone id")
	school := fs.String("school", "", "school id")
	inspector := fs.String("inspector", "", "inspector id")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	format := fs.String("format", "xlsx", "xlsx or csv")
	dest := fs.String("o", "", "output file")
	photos := fs.Bool("photos", false, "add the photo appendix (hazards of one -school, xlsx)")
	// Positional arguments first, then flags (or the other way round).
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return fmt.Errorf("%v\n%s", err, reportUsage)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	q := client.ReportQuery{Zone: *zone, School: *school, Inspector: *inspector, Photos: *photos}
	switch cmd {
	case "quotas":
		if len(pos) != 1 {
			return errors.New(reportUsage)
		}
		q.Period = pos[0]
		resp, err := c.ReportQuotas(ctx, q)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(out, resp)
		}
		return quotaTable(out, resp)
	case "feedback":
		if len(pos) != 1 {
			return errors.New(reportUsage)
		}
		q.Period = pos[0]
		resp, err := c.ReportFeedback(ctx, q)
		if err != nil {
			return err
		}
		return printJSON(out, resp)
	case "chart":
		if len(pos) != 2 {
			return errors.New(reportUsage)
		}
		q.Period = pos[1]
		svg, err := c.ReportChart(ctx, pos[0], q)
		if err != nil {
			return err
		}
		name := *dest
		if name == "" {
			name = pos[0] + ".svg"
		}
		if err := os.WriteFile(name, svg, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "wrote %s (%d bytes)\n", name, len(svg))
		return nil
	case "export":
		if len(pos) != 2 {
			return errors.New(reportUsage)
		}
		q.Period = pos[1]
		name := *dest
		if name == "" {
			name = fmt.Sprintf("%s-%s.%s", pos[0], strings.ReplaceAll(pos[1], "..", "_"), *format)
		}
		f, err := os.Create(name)
		if err != nil {
			return err
		}
		_, n, err := c.ExportReport(ctx, pos[0], *format, q, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(name)
			return err
		}
		fmt.Fprintf(out, "wrote %s (%d bytes)\n", name, n)
		return nil
	}
	return fmt.Errorf("unknown report %q\n%s", cmd, reportUsage)
}

func printJSON(out io.Writer, raw json.RawMessage) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// quotaTable prints quota completion as two tables, inspectors then
// schools, in Chinese: done/required, what is missing, overdue hazards.
func quotaTable(out io.Writer, raw json.RawMessage) error {
	type count struct{ Done, Required, Missing float64 }
	var rep struct {
		Period struct {
			Label, From, To string
		}
		Today      string
		Inspectors []struct {
			InspectorID      string `json:"inspector_id"`
			Name             string
			SchoolIDs        []string `json:"school_ids"`
			Visits           count
			VisitDays        count `json:"visit_days"`
			ObservationHours count `json:"observation_hours"`
			HazardsOverdue   count `json:"hazards_overdue"`
			Gaps             []any
		}
		Schools []struct {
			SchoolID       string `json:"school_id"`
			Name           string
			Visits         count
			VisitDays      count `json:"visit_days"`
			HazardsOpen    count `json:"hazards_open"`
			HazardsOverdue count `json:"hazards_overdue"`
		}
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		return err
	}
	fmt.Fprintf(out, "统计期间 %s（%s 至 %s），截至 %s\n\n", rep.Period.Label, rep.Period.From, rep.Period.To, rep.Today)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "督学\t挂牌学校\t进校次数\t在校天数\t听课学时\t逾期隐患\t缺项")
	for _, in := range rep.Inspectors {
		name := in.Name
		if name == "" {
			name = in.InspectorID
		}
		fmt.Fprintf(tw, "%s\t%d\t%g/%g\t%g/%g\t%g/%g\t%g\t%d\n", name, len(in.SchoolIDs), in.Visits.Done, in.Visits.Required,
			in.VisitDays.Done, in.VisitDays.Required, in.ObservationHours.Done, in.ObservationHours.Required, in.HazardsOverdue.Done, len(in.Gaps))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "学校\t进校次数\t在校天数\t未整改隐患\t逾期隐患")
	for _, s := range rep.Schools {
		name := s.Name
		if name == "" {
			name = s.SchoolID
		}
		fmt.Fprintf(tw, "%s\t%g/%g\t%g/%g\t%g\t%g\n", name, s.Visits.Done, s.Visits.Required, s.VisitDays.Done, s.VisitDays.Required, s.HazardsOpen.Done, s.HazardsOverdue.Done)
	}
	return tw.Flush()
}
