package minio

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/syncproto"
)

// BlobOptions tune a Blobs store. Zero fields take the defaults below.
type BlobOptions struct {
	// OpTimeout bounds each call that moves no photo bytes (stat, list,
	// remove). Default 5 s.
	OpTimeout time.Duration
	// DataTimeout bounds each transfer: a Put, or a Get from the call to
	// Close. Default 60 s.
	DataTimeout time.Duration
	// MaxRetries is how many times minio-go tries a request before giving
	// up. minio-go's default (10, with backoff) keeps a phone waiting
	// seconds for a server that is down; the phone retries anyway. Default 2.
	MaxRetries int
	// PublicEndpoint is the host:port phones and browsers reach the store
	// at, which presigned URLs must name (the signature covers the host).
	// Default: the Config's endpoint. PublicSecure says whether it is https.
	PublicEndpoint string
	PublicSecure   bool
	// Region is the store's region, needed to sign without asking the
	// server. Default "us-east-1", MinIO's.
	Region string
}

// Blobs is media.BlobStore on a MinIO bucket. It is safe for concurrent
// use.
//
// It uses its own minio-go clients rather than Store's: one with trailing
// headers, so that MinIO itself checks the sha256 of every photo it stores
// (the x-amz-checksum-sha256 header) and refuses wrong bytes without
// storing them, with few retries so that a dead server fails fast; and one
// on the public endpoint for presigning. Construction does no I/O; Open a
// Store first to create the bucket.
type Blobs struct {
	client  *minio.Client
	presign *minio.Client
	bucket  string
	prefix  string
	opts    BlobOptions
}

var _ media.BlobStore = (*Blobs)(nil)

// NewBlobs returns the store of cfg's bucket, under cfg.Prefix.
func NewBlobs(cfg Config, opts BlobOptions) (*Blobs, error) {
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = 5 * time.Second
	}
	if opts.DataTimeout <= 0 {
		opts.DataTimeout = 60 * time.Second
	}
	if opts.MaxRetries <= 0 {
		opts.MaxRetries = 2
	}
	if opts.PublicEndpoint == "" {
		opts.PublicEndpoint, opts.PublicSecure = cfg.Endpoint, cfg.Secure
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("minio: blobs: endpoint and bucket are required")
	}
	creds := credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	tr, err := cfg.transport()
	if err != nil {
		return nil, fmt.Errorf("minio: blobs on %s: %w", cfg.Endpoint, err)
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds: creds, Secure: cfg.Secure, Region: opts.Region,
		TrailingHeaders: true, MaxRetries: opts.MaxRetries, Transport: tr,
	})
	if err != nil {
		return nil, fmt.Errorf("minio: blobs on %s: %w", cfg.Endpoint, err)
	}
	presign, err := minio.New(opts.PublicEndpoint, &minio.Options{Creds: creds, Secure: opts.PublicSecure, Region: opts.Region})
	if err != nil {
		return nil, fmt.Errorf("minio: blobs: public endpoint %s: %w", opts.PublicEndpoint, err)
	}
	return &Blobs{client: client, presign: presign, bucket: cfg.Bucket, prefix: cfg.Prefix, opts: opts}, nil
}

// Put implements media.BlobStore. The object is sent in one request, so
// that MinIO checks opts.SHA256 over the whole object and stores all of it
// or nothing; photos are at most tens of MiB.
func (b *Blobs) Put(ctx context.Context, key string, r io.Reader, size int64, opts media.PutOptions) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.DataTimeout)
	defer cancel()
	po := minio.PutObjectOptions{
		ContentType: opts.ContentType,
		// The payload is not signed (no second sha256 pass in this
		// process); its integrity is checked by MinIO against the sha256
		// header below, or against the CRC32C minio-go adds otherwise.
		DisableContentSha256: true,
		DisableMultipart:     true,
	}
	if opts.SHA256 != "" {
		raw, err := hex.DecodeString(opts.SHA256)
		if err != nil || len(raw) != 32 {
			return fmt.Errorf("minio: put %s: bad sha256 %q", key, opts.SHA256)
		}
		po.UserMetadata = map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(raw)}
	}
	if opts.IfAbsent {
		po.SetMatchETagExcept("*")
	}
	_, err := b.client.PutObject(ctx, b.bucket, b.prefix+key, r, size, po)
	return translate("put", key, err)
}

// Get implements media.BlobStore. Errors, ENOTFOUND included, come from
// the first Read: minio-go opens objects lazily, which saves a round trip.
func (b *Blobs) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.DataTimeout)
	obj, err := b.client.GetObject(ctx, b.bucket, b.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		cancel()
		return nil, translate("get", key, err)
	}
	return &object{obj: obj, key: key, cancel: cancel}, nil
}

// object translates the errors of a *minio.Object and ends its context on
// Close.
type object struct {
	obj    *minio.Object
	key    string
	cancel context.CancelFunc
}

func (o *object) Read(p []byte) (int, error) {
	n, err := o.obj.Read(p)
	if err != nil && err != io.EOF {
		err = translate("get", o.key, err)
	}
	return n, err
}

func (o *object) Close() error {
	err := o.obj.Close()
	o.cancel()
	return err
}

// Stat implements media.BlobStore.
func (b *Blobs) Stat(ctx context.Context, key string) (media.BlobInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.OpTimeout)
	defer cancel()
	info, err := b.client.StatObject(ctx, b.bucket, b.prefix+key, minio.StatObjectOptions{})
	if err != nil {
		return media.BlobInfo{}, translate("stat", key, err)
	}
	return media.BlobInfo{Key: key, Size: info.Size, ContentType: info.ContentType, Modified: info.LastModified}, nil
}

// List implements media.BlobStore.
func (b *Blobs) List(ctx context.Context, prefix string) ([]media.BlobInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.OpTimeout)
	defer cancel()
	var out []media.BlobInfo
	for obj := range b.client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: b.prefix + prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, translate("list", prefix, obj.Err)
		}
		out = append(out, media.BlobInfo{
			Key: strings.TrimPrefix(obj.Key, b.prefix), Size: obj.Size,
			ContentType: obj.ContentType, Modified: obj.LastModified,
		})
	}
	return out, nil
}

// Remove implements media.BlobStore.
func (b *Blobs) Remove(ctx context.Context, keys ...string) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.OpTimeout)
	defer cancel()
	if len(keys) == 1 {
		return translate("remove", keys[0], b.client.RemoveObject(ctx, b.bucket, b.prefix+keys[0], minio.RemoveObjectOptions{}))
	}
	objects := make(chan minio.ObjectInfo, len(keys))
	for _, k := range keys {
		objects <- minio.ObjectInfo{Key: b.prefix + k}
	}
	close(objects)
	var errs []error
	for rerr := range b.client.RemoveObjects(ctx, b.bucket, objects, minio.RemoveObjectsOptions{}) {
		errs = append(errs, translate("remove", strings.TrimPrefix(rerr.ObjectName, b.prefix), rerr.Err))
	}
	return errors.Join(errs...)
}

// PresignGet implements media.BlobStore. Signing needs no round trip to
// the server.
func (b *Blobs) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	u, err := b.presign.PresignedGetObject(ctx, b.bucket, b.prefix+key, ttl, url.Values{})
	if err != nil {
		return "", translate("presign", key, err)
	}
	return u.String(), nil
}

// unavailable is the message of EUNAVAILABLE errors: phones show it.
const unavailable = "The photo store is unavailable; try again later."

// full is the message when MinIO's disks are full (507
// XMinioStorageFull): nothing was stored, and the phone keeps the photo
// queued until the operators add space.
const full = "The photo store is full; nothing was stored. Try again later."

// translate turns minio-go's errors into syncproto codes at the edge of
// the package, keeping the original text for the log.
func translate(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var pe *syncproto.Error
	if errors.As(err, &pe) {
		return fmt.Errorf("minio: %s %s: %w", op, key, err)
	}
	code := ""
	resp := minio.ToErrorResponse(err)
	var ne net.Error
	var ue *url.Error
	switch {
	case resp.Code == "XMinioStorageFull", resp.StatusCode == 507,
		strings.Contains(resp.Message, "no space left on device"), strings.Contains(resp.Message, "Storage backend has reached its minimum free drive threshold"):
		return fmt.Errorf("minio: %s %s: %v: %w", op, key, err, syncproto.Errorf(syncproto.EUNAVAILABLE, "%s", full))
	case resp.Code == minio.NoSuchKey:
		code = syncproto.ENOTFOUND
	case resp.Code == "XAmzContentChecksumMismatch", resp.Code == "BadDigest", resp.Code == "XAmzContentSHA256Mismatch":
		code = syncproto.EINVALID
	case resp.Code == "PreconditionFailed":
		code = syncproto.ECONFLICT
	case resp.StatusCode == 503, resp.Code == "SlowDown", resp.Code == "XMinioServerNotInitialized",
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.As(err, &ne), errors.As(err, &ue),
		// Any other failure of MinIO itself (an InternalError while its
		// disk fills, a restart under way) is a dependency that failed:
		// the phone keeps the photo and retries, as for 503.
		resp.StatusCode >= 500,
		// MinIO refused a body that ended before its length: the bytes
		// came from staged chunks read back from MinIO itself, which a
		// filling disk can cut short. Nothing was stored; the phone
		// retries, and the photo's sha256 is checked again then.
		resp.Code == "IncompleteBody":
		code = syncproto.EUNAVAILABLE
	default:
		return fmt.Errorf("minio: %s %s: %w", op, key, err)
	}
	msg := map[string]string{
		syncproto.ENOTFOUND:    "No such object.",
		syncproto.EINVALID:     "The bytes do not match their checksum; nothing was stored.",
		syncproto.ECONFLICT:    "The object exists already.",
		syncproto.EUNAVAILABLE: unavailable,
	}[code]
	return fmt.Errorf("minio: %s %s: %v: %w", op, key, err, syncproto.Errorf(code, "%s", msg))
}
