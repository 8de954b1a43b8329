// photo.js: a camera photo made ready to queue. It is downscaled on the
// phone to at most 1600 px on its long side as JPEG, with the EXIF
// orientation applied to the pixels (the new JPEG carries no EXIF), and
// the photo's own time and place are read from its EXIF and kept in the
// attachment record instead.

export const MAX_SIDE = 1600;
export const THUMB_SIDE = 320;

async function draw(bitmap, side, quality) {
  const scale = Math.min(1, side / Math.max(bitmap.width, bitmap.height));
  const w = Math.max(1, Math.round(bitmap.width * scale));
  const h = Math.max(1, Math.round(bitmap.height * scale));
  const canvas = typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(w, h) : Object.assign(document.createElement('canvas'), { width: w, height: h });
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, w, h);
  ctx.drawImage(bitmap, 0, 0, w, h);
  if (canvas.convertToBlob) return canvas.convertToBlob({ type: 'image/jpeg', quality });
  return new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', quality));
}

// prepare returns {blob, thumb, meta: {taken_at, geo}, width, height}.
export async function prepare(file) {
  const head = await file.slice(0, 256 * 1024).arrayBuffer();
  const meta = readExif(head);
  const bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  try {
    const blob = await draw(bitmap, MAX_SIDE, 0.85);
    const thumb = await draw(bitmap, THUMB_SIDE, 0.7);
    return { blob, thumb, meta, width: bitmap.width, height: bitmap.height };
  } finally {
    bitmap.close?.();
  }
}

// readExif reads DateTimeOriginal and the GPS position from a JPEG's
// EXIF block; what it cannot read is left out.
export function readExif(buf) {
  const out = {};
  try {
    const v = new DataView(buf);
    if (v.getUint16(0) !== 0xffd8) return out;
    let off = 2;
    while (off + 4 < v.byteLength) {
      const marker = v.getUint16(off);
      const len = v.getUint16(off + 2);
      if (marker === 0xffe1 && v.getUint32(off + 4) === 0x45786966) { parseTiff(v, off + 10, out); break; }
      if ((marker & 0xff00) !== 0xff00 || marker === 0xffda) break;
      off += 2 + len;
    }
  } catch { /* a broken EXIF block is ignored */ }
  return out;
}

function parseTiff(v, t, out) {
  const le = v.getUint16(t) === 0x4949;
  const u16 = (o) => v.getUint16(t + o, le);
  const u32 = (o) => v.getUint32(t + o, le);
  const ifd = (o) => {
    const tags = {};
    const n = u16(o);
    for (let i = 0; i < n; i++) {
      const e = o + 2 + i * 12;
      tags[u16(e)] = { type: u16(e + 2), count: u32(e + 4), at: e + 8 };
    }
    return tags;
  };
  const ascii = (tag) => {
    const at = tag.count > 4 ? u32(tag.at) : tag.at;
    let s = '';
    for (let i = 0; i < tag.count - 1; i++) s += String.fromCharCode(v.getUint8(t + at + i));
    return s;
  };
  const rationals = (tag) => {
    const at = u32(tag.at);
    const r = [];
    for (let i = 0; i < tag.count; i++) r.push(u32(at + i * 8) / (u32(at + i * 8 + 4) || 1));
    return r;
  };
  const ifd0 = ifd(u32(4));
  if (ifd0[0x8769]) {
    const ex = ifd(u32(ifd0[0x8769].at));
    const dt = ex[0x9003] || ex[0x9004];
    if (dt) {
      const m = ascii(dt).match(/^(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})/);
      // EXIF times carry no zone; phones in China write local time.
      if (m) out.taken_at = `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}+08:00`;
    }
  }
  if (ifd0[0x8825]) {
    const g = ifd(u32(ifd0[0x8825].at));
    if (g[2] && g[4]) {
      const dms = (a) => a[0] + a[1] / 60 + a[2] / 3600;
      let lat = dms(rationals(g[2]));
      let lng = dms(rationals(g[4]));
      if (g[1] && ascii(g[1]) === 'S') lat = -lat;
      if (g[3] && ascii(g[3]) === 'W') lng = -lng;
      out.geo = { lat: Math.round(lat * 1e6) / 1e6, lng: Math.round(lng * 1e6) / 1e6 };
    }
  }
}
