package reports

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/media"
)

// Thumb is one photo of a hazard for the ledger's photo appendix: its
// small thumbnail as JPEG, or a note saying why there is none (not
// uploaded yet, thumbnail not made).
type Thumb struct {
	SHA256 string
	JPEG   []byte
	Note   string
}

// PhotoSource returns the photos of a hazard of a school.
type PhotoSource func(ctx context.Context, schoolID, hazardID string) ([]Thumb, error)

// maxThumbBytes bounds one thumbnail read.
const maxThumbBytes = 2 << 20

// MediaThumbs is the PhotoSource of principal p on the photo service:
// the photos the hazard's record expects, each thumbnail (320 px) read
// through the time-limited link the service hands out, with p's rights.
// hc nil uses a client with a 20 s timeout.
func MediaThumbs(m *media.Service, hc *http.Client, p server.Principal) PhotoSource {
	if hc == nil {
		hc = &http.Client{Timeout: 20 * time.Second}
	}
	return func(ctx context.Context, schoolID, hazardID string) ([]Thumb, error) {
		rp, err := m.RecordPhotos(ctx, p, hazardID, schoolID)
		if err != nil {
			return nil, err
		}
		var out []Thumb
		for _, ph := range rp.Photos {
			t := Thumb{SHA256: ph.SHA256}
			switch {
			case !ph.Received:
				t.Note = "照片尚未上传 / not uploaded yet"
			default:
				t.JPEG, err = fetchThumb(ctx, m, hc, p, ph.SHA256)
				if err != nil {
					t.Note = "缩略图不可用 / no thumbnail: " + err.Error()
				}
			}
			out = append(out, t)
		}
		return out, nil
	}
}

func fetchThumb(ctx context.Context, m *media.Service, hc *http.Client, p server.Principal, sha string) ([]byte, error) {
	u, err := m.URL(ctx, p, sha, media.Variant320)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.URL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("object store answered %d", resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxThumbBytes))
}

// AppendixItem is a hazard of the appendix with its photos.
type AppendixItem struct {
	HazardID, Title, Found string
	Photos                 []Thumb
}
