// upload.js: resumable photo uploads, by content hash, in one module so
// that changes of the server's upload rules (uploads owned per device,
// say) touch only this file. It mirrors mobile/photos.go (uploadPhoto):
//
//   GET  /v1/blobs/{sha256}                 how much the server holds
//   PUT  /v1/blobs/{sha256}                 a small photo in one request
//   PUT  /v1/blobs/{sha256}/chunks/{offset} the next chunk, from the
//                                           server's received offset
//   POST /v1/blobs/{sha256}/finish          {size, content_type}
//
// The server is the judge of what it holds: after every chunk the phone
// continues from the offset the server reports and stores it, so a page
// closed in the middle of an upload resumes there on the next sync.

// PhotoError is a problem with one photo (the server refused it, the
// bytes are gone) that does not stop the others; any other error (the
// network) ends the sync, to be repeated later.
export class PhotoError extends Error {}

const PHOTO_CODES = new Set(['invalid', 'forbidden', 'too_large', 'unsupported', 'conflict', 'not_found']);

function classify(err) {
  if (err && PHOTO_CODES.has(err.code)) return new PhotoError(err.message);
  return err;
}

// uploadPhoto uploads one photo from wherever the server's copy ends.
//   http:       the engine's request function: http(method, path, {body, type}) → JSON
//   photo:      {sha256, size, content_type}
//   blob:       the photo's bytes (a Blob), or null if they are gone
//   chunkBytes: the server's chunk size (Limits.chunk_bytes)
//   onReceived: awaited after every chunk with the server's offset, to be
//               stored; progress(done) for the screen
// It resolves with the bytes sent once the server says the photo is
// complete under its hash.
export async function uploadPhoto({ http, photo, blob, chunkBytes, onReceived, progress }) {
  const path = '/v1/blobs/' + encodeURIComponent(photo.sha256);
  let st;
  try {
    st = await http('GET', path);
  } catch (e) {
    if (e.code !== 'not_found') throw e;
    st = { state: 'missing', received: 0 };
  }
  if (st.state === 'complete') return 0;
  if (!blob || blob.size !== photo.size) {
    throw new PhotoError('照片文件已不在手机上 / the photo is no longer on this phone');
  }
  let sent = 0;
  if (st.state !== 'partial' && !st.received && photo.size <= chunkBytes) {
    try {
      st = await http('PUT', path, { body: blob, type: photo.content_type || 'application/octet-stream' });
    } catch (e) {
      throw classify(e);
    }
    sent = photo.size;
  } else {
    let off = Math.min(st.received || 0, photo.size);
    while (off < photo.size) {
      const chunk = blob.slice(off, Math.min(off + chunkBytes, photo.size));
      try {
        st = await http('PUT', `${path}/chunks/${off}`, { body: chunk, type: 'application/octet-stream' });
      } catch (e) {
        throw classify(e);
      }
      sent += chunk.size;
      let next = off + chunk.size;
      if (st.received > 0 && st.received <= photo.size) next = st.received;
      off = next;
      await onReceived(off);
      progress?.(off);
    }
    try {
      st = await http('POST', `${path}/finish`, { json: { size: photo.size, content_type: photo.content_type } });
    } catch (e) {
      throw classify(e);
    }
  }
  if (st.state !== 'complete') {
    throw new PhotoError(`服务器收到 ${st.received} / ${photo.size} 字节 / the server holds ${st.received} of ${photo.size} bytes after the upload`);
  }
  return sent;
}
