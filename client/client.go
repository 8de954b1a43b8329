// Package client is the one Go client of fieldsync's HTTP API, as
// server/api/openapi.json describes it: the phone's sync and photo routes
// (mobile's Transport is this client), and the office's admin routes used
// by fieldsyncctl, the load generator and the tests.
//
// It speaks the wire format only: it imports syncproto of this module and
// nothing else — never server (the phone links it), never Fiber.
//
// Every request carries "Authorization: Bearer <token>" when Token gives
// one. An error answer is read from {"error":{"code","message","fields"}}
// into *syncproto.Error (a refused XLSForm workbook into *Refusal); an
// answer without that body gets a code from its HTTP status, so callers
// compare syncproto.ErrorCode(err) whatever answered (fieldsyncd, a proxy).
// A request that got no answer (no network, a timeout) is any other error.
// No method retries.
package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
)

// Client reaches one fieldsyncd. Its zero value is not usable: set
// BaseURL. It is safe for concurrent use.
type Client struct {
	// BaseURL is the server's address, e.g. "https://sync.example.cn".
	BaseURL string
	// Token returns the bearer token (a device's or the admin's); nil or ""
	// sends no Authorization.
	Token func() string
	// Client is the HTTP client; nil means a client with a 60 s timeout.
	Client *http.Client
	// GzipRequests compresses JSON bodies over 1 KiB (Content-Encoding:
	// gzip). Answers are compressed whenever the server supports it:
	// net/http asks for gzip and decompresses transparently.
	GzipRequests bool
}

// New returns a client of baseURL sending token (the admin's or a
// device's; "" for none).
func New(baseURL, token string) *Client {
	return &Client{BaseURL: baseURL, Token: func() string { return token }}
}

var defaultClient = &http.Client{Timeout: 60 * time.Second}

// maxAnswer bounds what is read of one answer.
const maxAnswer = 256 << 20

func (c *Client) httpClient() *http.Client {
	if c.Client != nil {
		return c.Client
	}
	return defaultClient
}

// Raw sends one request with body (nil for none) of contentType and
// returns the answer's body and headers; an answer of 300 or more is an
// error (see the package comment).
func (c *Client) Raw(ctx context.Context, method, path, contentType string, body []byte) ([]byte, http.Header, error) {
	return c.send(ctx, method, path, contentType, "", body)
}

func (c *Client) send(ctx context.Context, method, path, contentType, encoding string, body []byte) ([]byte, http.Header, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, r)
	if err != nil {
		return nil, nil, fmt.Errorf("http: %s %s: %w", method, path, err)
	}
	if contentType != "" && body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != nil {
		if tok := c.Token(); tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("http: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, nil, fmt.Errorf("http: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return nil, resp.Header, decodeError(resp.StatusCode, data)
	}
	return data, resp.Header, nil
}

// Do sends in (nil for no body) as canonical JSON and decodes a JSON
// answer into out (when not nil). Numbers in out's any-typed members are
// json.Number.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	enc := ""
	if in != nil {
		b, err := syncproto.Marshal(in)
		if err != nil {
			return fmt.Errorf("http: %s %s: encode: %w", method, path, err)
		}
		body = b
		if c.GzipRequests && len(b) > 1024 {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(b)
			zw.Close()
			body, enc = buf.Bytes(), "gzip"
		}
	}
	data, _, err := c.send(ctx, method, path, "application/json", enc, body)
	if err != nil {
		return err
	}
	return decodeAnswer(method, path, data, out)
}

// decodeAnswer decodes a JSON answer into out, when out is not nil and
// the answer has a body.
func decodeAnswer(method, path string, data []byte, out any) error {
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(out); err != nil {
		return fmt.Errorf("http: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// statusCodes maps HTTP statuses to protocol codes for answers that carry
// no error body (a proxy's 502, an empty 401).
var statusCodes = map[int]string{
	http.StatusBadRequest:            syncproto.EINVALID,
	http.StatusUnauthorized:          syncproto.EUNAUTHORIZED,
	http.StatusForbidden:             syncproto.EFORBIDDEN,
	http.StatusNotFound:              syncproto.ENOTFOUND,
	http.StatusConflict:              syncproto.ECONFLICT,
	http.StatusGone:                  syncproto.ESTALE,
	http.StatusRequestEntityTooLarge: syncproto.ETOOLARGE,
	http.StatusUnsupportedMediaType:  syncproto.EUNSUPPORTED,
	http.StatusServiceUnavailable:    syncproto.EUNAVAILABLE,
	http.StatusBadGateway:            syncproto.EUNAVAILABLE,
	http.StatusGatewayTimeout:        syncproto.EUNAVAILABLE,
	http.StatusTooManyRequests:       syncproto.EUNAVAILABLE,
}

// decodeError turns an error answer into *Refusal, *syncproto.Error, or
// a *syncproto.Error coded from the status.
func decodeError(status int, body []byte) error {
	var env struct {
		Error    *syncproto.Error `json:"error"`
		Problems []Problem        `json:"problems"`
		Warnings []Problem        `json:"warnings"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error != nil && env.Error.Code != "" {
		if len(env.Problems) > 0 {
			return &Refusal{Err: env.Error, Problems: env.Problems, Warnings: env.Warnings}
		}
		return env.Error
	}
	code, ok := statusCodes[status]
	if !ok {
		code = syncproto.EINTERNAL
		if status >= 500 {
			code = syncproto.EUNAVAILABLE
		}
	}
	return syncproto.Errorf(code, "The server answered %d %s.", status, http.StatusText(status))
}

// Refusal is a 400 answer to an XLSForm workbook with problems: every
// problem with its place. errors.As finds the *syncproto.Error inside.
type Refusal struct {
	Err      *syncproto.Error
	Problems []Problem
	Warnings []Problem
}

// Problem is one problem of a workbook, in both languages.
type Problem struct {
	Sheet   string `json:"sheet"`
	Row     int    `json:"row"`
	Column  string `json:"column"`
	Message struct {
		ZH string `json:"zh"`
		EN string `json:"en"`
	} `json:"message"`
}

// String says where the problem is and what it is.
func (p Problem) String() string {
	where := p.Sheet
	if where == "" {
		where = "workbook"
	}
	if p.Row > 0 {
		where += fmt.Sprintf(" 第 %d 行 row %d", p.Row, p.Row)
	}
	if p.Column != "" {
		where += ", " + p.Column
	}
	return where + ": " + p.Message.ZH + " / " + p.Message.EN
}

// Error lists the problems, then the warnings.
func (r *Refusal) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the workbook has %d problem(s) / 表格有 %d 处问题:", len(r.Problems), len(r.Problems))
	for _, p := range r.Problems {
		b.WriteString("\n  " + p.String())
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintf(&b, "\nwarnings / 提醒 (%d):", len(r.Warnings))
		for _, p := range r.Warnings {
			b.WriteString("\n  " + p.String())
		}
	}
	return b.String()
}

// Unwrap returns the protocol error, so syncproto.ErrorCode reads it.
func (r *Refusal) Unwrap() error { return r.Err }
