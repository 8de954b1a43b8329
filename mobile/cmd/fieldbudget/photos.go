package main

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"net/http"
	"strconv"
	"time"
)

// hostilePhotos are the photos that took fieldsyncd down before issue
// #12's fixes, each made unique by a counter (a new sha256, so a new
// thumbnail job) by its func:
//
//   - an 8192×8192 PNG of 16-bit RGBA pixels, all zero: about 0.5 MB sent,
//     768 MiB once decoded (it cost 520 MB of RSS, kept);
//   - the same of 16-bit grey pixels: 128 MiB decoded, within the server's
//     decode budget, so it is decoded (and its memory must stay bounded);
//   - a JPEG whose EXIF Orientation tag has count 0x80000001 (goexif
//     allocated 17 GB for it);
//   - a JPEG whose two IFDs point at each other (goexif looped).
type hostilePhotos struct {
	pngHeads [][]byte // signature, IHDR, IDAT
	jpegs    [][]byte
}

// newHostilePhotos makes them; side is the PNG's width and height.
func newHostilePhotos(side int) (*hostilePhotos, error) {
	h := &hostilePhotos{}
	for _, c := range []struct{ colorType, bytesPerPixel byte }{{6, 8}, {0, 2}} { // 16-bit RGBA, 16-bit grey
		var png bytes.Buffer
		png.WriteString("\x89PNG\r\n\x1a\n")
		ihdr := binary.BigEndian.AppendUint32(nil, uint32(side))
		ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(side))
		ihdr = append(ihdr, 16, c.colorType, 0, 0, 0) // 16 bits a sample
		pngChunk(&png, "IHDR", ihdr)
		var idat bytes.Buffer
		zw, err := zlib.NewWriterLevel(&idat, zlib.BestCompression)
		if err != nil {
			return nil, err
		}
		row := make([]byte, 1+side*int(c.bytesPerPixel)) // filter byte 0, then zero pixels
		for range side {
			if _, err := zw.Write(row); err != nil {
				return nil, err
			}
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		pngChunk(&png, "IDAT", idat.Bytes())
		h.pngHeads = append(h.pngHeads, png.Bytes())
	}

	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for i := range img.Pix {
		img.Pix[i] = byte(i)
	}
	img.Set(0, 0, color.RGBA{255, 0, 0, 255})
	var enc bytes.Buffer
	if err := jpeg.Encode(&enc, img, &jpeg.Options{Quality: 80}); err != nil {
		return nil, err
	}
	for _, tiff := range [][]byte{hugeCountTIFF(), cyclicTIFF()} {
		app1 := append([]byte("Exif\x00\x00"), tiff...)
		j := []byte{0xFF, 0xD8, 0xFF, 0xE1}
		j = binary.BigEndian.AppendUint16(j, uint16(len(app1)+2))
		j = append(j, app1...)
		h.jpegs = append(h.jpegs, append(j, enc.Bytes()[2:]...))
	}
	return h, nil
}

func pngChunk(b *bytes.Buffer, typ string, data []byte) {
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(data))))
	body := append([]byte(typ), data...)
	b.Write(body)
	b.Write(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(body)))
}

// ifd writes a big-endian IFD of entries {tag, type, count, value} and
// the offset of the next IFD.
func ifd(entries [][4]uint32, next uint32) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(entries)))
	for _, e := range entries {
		b = binary.BigEndian.AppendUint16(b, uint16(e[0]))
		b = binary.BigEndian.AppendUint16(b, uint16(e[1]))
		b = binary.BigEndian.AppendUint32(b, e[2])
		b = binary.BigEndian.AppendUint32(b, e[3])
	}
	return binary.BigEndian.AppendUint32(b, next)
}

// hugeCountTIFF: IFD0 holds Orientation (SHORT) with count 0x80000001.
func hugeCountTIFF() []byte {
	return append([]byte("MM\x00\x2a\x00\x00\x00\x08"), ifd([][4]uint32{{0x0112, 3, 0x80000001, 8}}, 0)...)
}

// cyclicTIFF: IFD0 (at 8, 18 bytes) and IFD1 (at 26) point at each other.
func cyclicTIFF() []byte {
	b := append([]byte("MM\x00\x2a\x00\x00\x00\x08"), ifd([][4]uint32{{0x0112, 3, 1, 3 << 16}}, 26)...)
	return append(b, ifd([][4]uint32{{0x0201, 4, 1, 0}}, 8)...)
}

// photo returns the i-th hostile photo and its content type.
func (h *hostilePhotos) photo(i int) ([]byte, string) {
	n := []byte(strconv.Itoa(i))
	switch kind := i % (len(h.pngHeads) + len(h.jpegs)); {
	case kind < len(h.pngHeads):
		var b bytes.Buffer
		b.Write(h.pngHeads[kind])
		pngChunk(&b, "tEXt", append([]byte("n\x00"), n...))
		pngChunk(&b, "IEND", nil)
		return b.Bytes(), "image/png"
	default:
		j := h.jpegs[kind-len(h.pngHeads)]
		com := []byte{0xFF, 0xFE}
		com = binary.BigEndian.AppendUint16(com, uint16(len(n)+2))
		out := append(append(append([]byte{}, j[:2]...), append(com, n...)...), j[2:]...)
		return out, "image/jpeg"
	}
}

// uploadHostilePhotos uploads the hostile photos one after the other,
// 200 ms apart, with the attacker's device token, until ctx is done; the
// server's thumbnail workers then take them.
func uploadHostilePhotos(ctx context.Context, e *env, worker int, t *tally) {
	client := &http.Client{Timeout: 2 * time.Minute}
	for i := worker * 1_000_000; ctx.Err() == nil; i++ {
		data, ct := e.photos.photo(i)
		sum := sha256.Sum256(data)
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, fmt.Sprintf("http://%s/v1/blobs/%s", e.host, hex.EncodeToString(sum[:])), bytes.NewReader(data))
		if err != nil {
			t.add("error")
			return
		}
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Authorization", "Bearer "+e.token)
		resp, err := client.Do(req)
		switch {
		case err != nil && ctx.Err() != nil:
			t.add("open at the end")
		case err != nil:
			t.add("closed")
		default:
			resp.Body.Close()
			t.add(strconv.Itoa(resp.StatusCode))
		}
		pause(ctx, 200*time.Millisecond)
	}
}
