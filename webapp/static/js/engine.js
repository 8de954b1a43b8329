// engine.js: the phone's sync engine in the browser, step for step the Go
// engine of mobile/ (engine.go, sync.go, photos.go) and client/phone.go over
// IndexedDB (db.js) instead of bbolt, with every record operation done by
// the WebAssembly core (core.js):
//
//  - An edit writes the new record, the clock and its outbox entry in one
//    transaction; unsent edits of a record fold into one entry.
//  - An entry put into a push batch is marked in flight with the batch id
//    before the request leaves and is resent unchanged (same batch id, op
//    ids and content) until the server answers.
//  - Pulled records are merged into the local copy and the cursor is
//    stored in the same transaction as the records of its page; 410 starts
//    the pull over from an empty cursor.
//  - Photos go after records, by sha256, in resumable chunks (upload.js).
//
// Identity is the server's: versions are written only with the enrolled
// device's id as replica and the inspector's user id from the enrollment.

import * as db from './db.js';
import * as core from './core.js';
import { uploadPhoto, PhotoError } from './upload.js';

const { p, tx } = db;

export const PROTOCOL = 1;
export const DEFAULT_LIMITS = { max_changes: 500, max_bytes: 8 << 20, max_pull: 500, chunk_bytes: 256 << 10, max_blob_size: 32 << 20 };

// now is the device clock; tests replace it through Playwright's clock.
export const now = () => new Date();

// uuid7 returns a new UUIDv7 (ids of records, ops, batches, devices).
export function uuid7() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  let ms = Date.now();
  for (let i = 5; i >= 0; i--) { b[i] = ms % 256; ms = Math.floor(ms / 256); }
  b[6] = (b[6] & 0x0f) | 0x70;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export class HTTPError extends Error {
  constructor(status, e) {
    super(e?.message || `HTTP ${status}`);
    this.status = status;
    this.code = e?.code || codeOf(status);
    this.fields = e?.fields || {};
  }
}

const STATUS_CODES = { 400: 'invalid', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 409: 'conflict', 410: 'stale', 413: 'too_large', 415: 'unsupported', 429: 'unavailable', 502: 'unavailable', 503: 'unavailable', 504: 'unavailable' };
function codeOf(status) { return STATUS_CODES[status] || (status >= 500 ? 'unavailable' : 'internal'); }

// reachable tracks whether the server answered the last request: a phone
// can be "online" to the OS and still reach nothing (a village school's
// weak signal, a captive portal). The app shows 离线 when it cannot.
export let serverReachable = true;
function reachable(ok) {
  if (ok === serverReachable) return;
  serverReachable = ok;
  globalThis.dispatchEvent?.(new CustomEvent('fieldsync-reachable', { detail: ok }));
}

// ---- settings ----

async function metaAll(store) {
  const [keys, vals] = await Promise.all([p(store.getAllKeys()), p(store.getAll())]);
  const m = {};
  keys.forEach((k, i) => { m[k] = vals[i]; });
  return m;
}

// deviceId returns the phone's device (replica) id, made once.
export async function deviceId() {
  return tx(['meta'], 'readwrite', async (s) => {
    let id = await p(s.meta.get('device_id'));
    if (!id) { id = uuid7(); s.meta.put(id, 'device_id'); }
    return id;
  });
}

async function token() { return db.getMeta('token'); }

// http sends one request to the server (same origin) and returns the
// parsed JSON answer; an error answer becomes HTTPError with the server's
// code, and a failed network a TypeError (both: try again later).
export async function http(method, path, { json, body, type, raw, gzip } = {}) {
  const headers = { Accept: 'application/json' };
  const tok = await token();
  if (tok) headers.Authorization = 'Bearer ' + tok;
  let payload = body;
  if (json !== undefined) payload = typeof json === 'string' ? json : JSON.stringify(json);
  if (payload !== undefined && type === undefined) headers['Content-Type'] = 'application/json';
  if (type) headers['Content-Type'] = type;
  if (gzip && typeof payload === 'string' && payload.length > 1024 && globalThis.CompressionStream) {
    payload = await new Response(new Blob([payload]).stream().pipeThrough(new CompressionStream('gzip'))).blob();
    headers['Content-Encoding'] = 'gzip';
  }
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload, cache: 'no-store' });
  } catch (e) {
    reachable(false);
    throw e;
  }
  reachable(true);
  const txt = await resp.text();
  if (!resp.ok) {
    let e = null;
    try { e = JSON.parse(txt).error; } catch { /* not JSON */ }
    throw new HTTPError(resp.status, e);
  }
  if (raw) return txt;
  return txt ? JSON.parse(txt) : null;
}

// enroll exchanges a one-time code from the office for a device token. A
// phone enrolling again first takes a new device id, because the server
// refuses a device id it has enrolled before. opts.deviceId (tests) names
// the device id to enroll.
export async function enroll(code, deviceName, opts = {}) {
  const m = await tx(['meta'], 'readonly', (s) => metaAll(s.meta));
  let dev = opts.deviceId || m.device_id || uuid7();
  if (m.token && !opts.deviceId) dev = uuid7();
  const resp = await http('POST', '/v1/devices/enroll', { json: { code: code.trim().toUpperCase(), device_id: dev, device_name: deviceName } });
  if (!resp?.token) throw new HTTPError(500, { code: 'internal', message: 'The enrollment answer has no token.' });
  await db.setMeta({
    device_id: dev, token: resp.token, author: resp.user_id, inspector: resp.inspector_id,
    device_name: deviceName, enrolled_at: resp.enrolled_at || now().toISOString(),
  });
  return { deviceId: dev, userId: resp.user_id, inspectorId: resp.inspector_id };
}

// ---- local edits ----

// formDefinition returns a published form version pulled from the server
// (records of kind "form"), for the core to check records of forms that
// are not built in.
let builtinKeys = null;
export async function formDefinition(formId, version) {
  if (!formId) return null;
  if (!builtinKeys) builtinKeys = new Set((await core.call('forms', {})).map((d) => `${d.id}@${d.version}`));
  if (builtinKeys.has(`${formId}@${version}`)) return null; // the core has it
  const views = await db.all('records');
  for (const r of views) {
    const v = r.view;
    if (v?.kind === 'form' && v.values?.definition?.id === formId && v.values.definition.version === version) return v.values.definition;
  }
  return null;
}

function writer(m) {
  return { replica: m.device_id, author: m.author || '', clock: m.clock || '', now: now().toISOString() };
}

// sync runs an entry point of the loaded core inside a transaction.
function C(name, req) {
  const out = globalThis.fieldsyncCore.call(name, JSON.stringify(req));
  if (out.startsWith('{"error":')) throw new core.CoreError(JSON.parse(out).error);
  return JSON.parse(out);
}

const EDIT_STORES = ['records', 'meta', 'outbox', 'pending', 'rejected'];

// enqueue adds a delta to the outbox (mobile's enqueue): folded into the
// record's newest entry that was never sent, or as a new entry with a new
// op id. Rejected changes of the record go with it (an edit answers a
// rejection) and leave the problem list.
async function enqueue(s, recordId, delta, base) {
  const [rkeys, rvals] = await Promise.all([p(s.rejected.getAllKeys()), p(s.rejected.getAll())]);
  rvals.forEach((rej, i) => {
    if (rej.record_id !== recordId) return;
    delta = C('merge', { a: delta, b: rej.change.record });
    base = C('mergeBase', { a: base, b: rej.change.base });
    s.rejected.delete(rkeys[i]);
  });
  const key = await p(s.pending.get(recordId));
  if (key !== undefined) {
    const ent = await p(s.outbox.get(key));
    if (ent && !ent.batch) {
      ent.delta = C('merge', { a: ent.delta, b: delta });
      ent.base = C('mergeBase', { a: ent.base, b: base });
      await p(s.outbox.put(ent, key));
      return;
    }
  }
  const k = await p(s.outbox.add({ op_id: uuid7(), record_id: recordId, delta, base, batch: '', created_at: now().toISOString() }));
  await p(s.pending.put(k, recordId));
}

// edit runs one edit through the core and stores its outcome in one
// transaction. req is the core's edit request without record and writer.
async function edit(recordId, req) {
  await core.load();
  return tx(EDIT_STORES, 'readwrite', async (s) => {
    const m = await metaAll(s.meta);
    if (!m.token) throw new HTTPError(401, { code: 'unauthorized', message: '请先登记手机 / enroll this phone first' });
    const cur = recordId ? await p(s.records.get(recordId)) : undefined;
    const out = C('edit', { ...req, record: cur?.raw ?? null, writer: writer(m) });
    if (!out.delta) return out;
    const id = out.view.id;
    await p(s.records.put({ id, raw: out.record, view: out.view }, id));
    await p(s.meta.put(out.clock, 'clock'));
    await enqueue(s, id, out.delta, out.base);
    return out;
  });
}

// save validates and writes a draft ({id, kind, school_id, form_id,
// form_version, values}); an invalid draft throws a CoreError whose
// fields name the problems, and writes nothing.
export async function save(draft) {
  const definition = await formDefinition(draft.form_id, draft.form_version);
  return edit(draft.id, { op: 'save', draft, definition });
}

// append adds an item to a record's append-only collection (a hazard's
// events) and resolves with the item id.
export async function append(recordId, collection, data, itemId) {
  const out = await edit(recordId, { op: 'append', collection, data, item_id: itemId });
  return out.item_id;
}

export async function remove(recordId) {
  return edit(recordId, { op: 'delete' });
}

// ---- photos ----

async function sha256(blob) {
  const d = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return [...new Uint8Array(d)].map((x) => x.toString(16).padStart(2, '0')).join('');
}

// queuePhoto keeps a photo's bytes until the server has them and returns
// its reference {sha256, size, content_type}. thumb is a small copy kept
// for the lists.
export async function queuePhoto(blob, thumb) {
  const ref = { sha256: await sha256(blob), size: blob.size, content_type: blob.type || 'image/jpeg' };
  await tx(['photos', 'blobs', 'thumbs'], 'readwrite', async (s) => {
    const old = await p(s.photos.get(ref.sha256));
    if (thumb) s.thumbs.put(thumb, ref.sha256);
    if (old) return;
    s.blobs.put(blob, ref.sha256);
    s.photos.put({ ...ref, state: 'queued', received: 0, added_at: now().toISOString() }, ref.sha256);
  });
  return ref;
}

// newAttachment queues a photo and creates its attachment record (kind
// "attachment", DOMAIN E22) for an owner that need not exist yet, as
// mobile.Engine.NewAttachment does; meta adds the photo's own time and
// place (EXIF). It resolves with the attachment id and the reference.
export async function newAttachment(ownerKind, ownerId, schoolId, blob, thumb, meta = {}) {
  const ref = await queuePhoto(blob, thumb);
  const values = {
    owner_type: ownerKind, owner_id: ownerId, kind: 'photo', mime: ref.content_type, size_bytes: ref.size,
    sha256: ref.sha256, taken_at: meta.taken_at || now().toISOString().replace(/\.\d+Z$/, 'Z'), file: ref,
  };
  if (meta.geo) values.geo = meta.geo;
  if (meta.phase) values.phase = meta.phase;
  const out = await save({ kind: 'attachment', school_id: schoolId, values });
  return { id: out.view.id, ref };
}

// ---- status ----

export async function status() {
  return tx(['meta', 'outbox', 'photos', 'rejected', 'records'], 'readonly', async (s) => {
    const [m, out, photos, rejected, nrec] = await Promise.all([metaAll(s.meta), p(s.outbox.getAll()), p(s.photos.getAll()), p(s.rejected.count()), p(s.records.count())]);
    const st = {
      deviceId: m.device_id || '', userId: m.author || '', inspectorId: m.inspector || '', enrolled: !!m.token,
      records: nrec, outbox: out.length, inFlight: out.filter((e) => e.batch).length, photos: 0, photoBytes: 0,
      rejected, lastSync: m.last_sync ? JSON.parse(m.last_sync) : null, serverOffset: Number(m.server_offset || 0),
    };
    for (const ph of photos) if (ph.state !== 'done') { st.photos++; st.photoBytes += ph.size - (ph.received || 0); }
    return st;
  });
}

// problems lists rejected changes, then records whose fields are in
// conflict, as mobile.Engine.Problems does.
export async function problems() {
  const rej = await db.all('rejected');
  const out = rej.map((r) => ({ type: 'rejected', id: r.change.op_id, recordId: r.record_id, kind: r.record_kind, error: r.error, at: r.at, fields: r.fields }));
  for (const r of await db.all('records')) {
    if (r.view?.conflicts && !r.view.deleted) out.push({ type: 'conflict', id: 'conflict:' + r.id, recordId: r.id, kind: r.view.kind, versions: r.view.conflicts, view: r.view });
  }
  return out;
}

// ---- sync ----

let running = null;

// sync pushes the outbox in batches, applies the outcomes, pulls until
// caught up and uploads queued photos with resume. progress({phase, done,
// total}) reports each phase. Safe to call again after any error or a
// page closed at any point. Calls while one runs share it.
export function sync(progress = () => {}) {
  if (!running) running = doSync(progress).finally(() => { running = null; });
  return running;
}

async function doSync(progress) {
  const rep = { started: now().toISOString(), batches: 0, pushed: 0, applied: 0, merged: 0, conflicts: 0, duplicates: 0, rejected: 0, requeued: 0, pulled: 0, restarts: 0, skipped: 0, photos: 0, photo_bytes: 0 };
  try {
    await core.load();
    const info = await http('GET', '/v1/sync/info');
    const lim = { ...DEFAULT_LIMITS };
    for (const k of Object.keys(lim)) if (info?.limits?.[k] > 0) lim[k] = info.limits[k];
    await db.setMeta({ limits: JSON.stringify(lim) });
    for (let round = 0; round < 3; round++) {
      await push(lim, rep, progress);
      const requeued = await pull(lim, rep, progress);
      if (!requeued) break;
    }
    await uploadPhotos(lim, rep, progress);
    await fetchThumbs().catch(() => {});
    return rep;
  } catch (e) {
    rep.error = e.message;
    rep.code = e.code || (e instanceof TypeError ? 'offline' : 'internal');
    throw Object.assign(e, { report: rep });
  } finally {
    rep.finished = now().toISOString();
    await db.setMeta({ last_sync: JSON.stringify(rep) }).catch(() => {});
    progress({ phase: 'done', report: rep });
  }
}

// nextBatch returns the batch to push (mobile's nextBatch): the oldest
// batch in flight, resent alone and unchanged, or up to max entries never
// sent, marked in flight under a new batch id.
async function nextBatch(max, maxBytes) {
  return tx(['outbox', 'pending'], 'readwrite', async (s) => {
    const [keys, vals] = await Promise.all([p(s.outbox.getAllKeys()), p(s.outbox.getAll())]);
    const b = { id: '', keys: [], entries: [] };
    keys.forEach((k, i) => {
      const e = vals[i];
      if (!e.batch || (b.id && e.batch !== b.id)) return;
      b.id = e.batch; b.keys.push(k); b.entries.push(e);
    });
    if (b.id) return b;
    const id = uuid7();
    let size = 0;
    for (let i = 0; i < keys.length && b.entries.length < max; i++) {
      const e = vals[i];
      size += JSON.stringify(e).length;
      if (b.entries.length > 0 && size > maxBytes * 0.9) break;
      e.batch = id;
      s.outbox.put(e, keys[i]);
      if ((await p(s.pending.get(e.record_id))) === keys[i]) s.pending.delete(e.record_id);
      b.keys.push(keys[i]); b.entries.push(e);
    }
    if (b.entries.length) b.id = id;
    return b;
  });
}

async function push(lim, rep, progress) {
  const total = await db.count('outbox');
  let done = 0;
  let max = lim.max_changes;
  const dev = await db.getMeta('device_id');
  for (let n = 0; n < 10000; n++) {
    const b = await nextBatch(max, lim.max_bytes);
    if (!b.entries.length) return;
    const body = await core.text('pushBody', { device_id: dev, batch_id: b.id, changes: b.entries.map((e) => ({ op_id: e.op_id, record: e.delta, base: e.base })) });
    progress({ phase: 'push', done, total: Math.max(total, done + b.entries.length) });
    let resp;
    try {
      resp = await http('POST', '/v1/sync/push', { json: body, gzip: true });
    } catch (e) {
      if (e.code === 'too_large') {
        // Nothing was stored: take the batch apart and send smaller ones.
        if (b.entries.length === 1) await applyResults(b, [{ op_id: b.entries[0].op_id, status: 'rejected', error: { code: e.code, message: e.message, fields: e.fields } }], rep);
        else { max = Math.max(1, Math.floor(b.entries.length / 2)); await release(b, rep); }
        continue;
      }
      throw e;
    }
    if (!resp || resp.results?.length !== b.entries.length) throw new Error(`push batch ${b.id}: ${resp?.results?.length} results for ${b.entries.length} changes`);
    resp.results.forEach((r, i) => { if (r.op_id !== b.entries[i].op_id) throw new Error(`push batch ${b.id}: result ${i} is for op ${r.op_id}`); });
    await applyResults(b, resp.results, rep);
    if (resp.server_time) await db.setMeta({ server_offset: String(Date.parse(resp.server_time) - Date.now()) });
    rep.batches++; rep.pushed += b.entries.length; done += b.entries.length;
    progress({ phase: 'push', done, total: Math.max(total, done) });
  }
  throw new Error('push: the outbox does not drain');
}

async function requeue(s, key, ent) {
  const pk = await p(s.pending.get(ent.record_id));
  if (pk !== undefined) {
    const pe = await p(s.outbox.get(pk));
    if (pe && !pe.batch) {
      pe.delta = C('merge', { a: pe.delta, b: ent.delta });
      pe.base = C('mergeBase', { a: pe.base, b: ent.base });
      s.outbox.put(pe, pk);
      s.outbox.delete(key);
      return;
    }
  }
  ent.op_id = uuid7(); ent.batch = '';
  s.outbox.put(ent, key);
  s.pending.put(key, ent.record_id);
}

async function release(b, rep) {
  await tx(['outbox', 'pending'], 'readwrite', async (s) => {
    for (let i = 0; i < b.keys.length; i++) { await requeue(s, b.keys[i], b.entries[i]); rep.requeued++; }
  });
}

const RETRYABLE = new Set(['unavailable', 'internal', 'op_reused']);
const KEPT = { applied: 'applied', merged: 'merged', conflict: 'conflicts', duplicate: 'duplicates' };

// applyResults stores the outcome of a batch in one transaction: accepted
// changes leave the outbox, rejected ones move to the problem list with
// the server's field messages, and retryable ones are requeued.
async function applyResults(b, results, rep) {
  await core.load();
  await tx(['outbox', 'pending', 'rejected'], 'readwrite', async (s) => {
    for (let i = 0; i < results.length; i++) {
      const r = results[i]; const ent = b.entries[i]; const key = b.keys[i];
      if (KEPT[r.status]) { rep[KEPT[r.status]]++; s.outbox.delete(key); continue; }
      const err = r.error || { code: 'invalid', message: `The server refused the change (status "${r.status}").` };
      if (RETRYABLE.has(err.code)) { await requeue(s, key, ent); rep.requeued++; continue; }
      rep.rejected++;
      const delta = JSON.parse(ent.delta);
      const fields = [...Object.keys(delta.fields || {}), ...Object.keys(delta.items || {})].sort();
      s.rejected.put({ change: { op_id: ent.op_id, record: ent.delta, base: ent.base }, record_id: ent.record_id, record_kind: delta.kind, fields, error: err, at: now().toISOString() }, ent.op_id);
      s.outbox.delete(key);
    }
  });
}

// pull pulls pages until the server has nothing more; it reports whether
// records the server no longer had were queued to be pushed again.
async function pull(lim, rep, progress) {
  let done = 0; let restarts = 0;
  for (;;) {
    const cursor = await db.getMeta('cursor');
    let body;
    try {
      body = await http('POST', '/v1/sync/pull', { json: { protocol: PROTOCOL, cursor: cursor || undefined, limit: lim.max_pull }, raw: true });
    } catch (e) {
      if (e.code === 'stale' && restarts < 3) { restarts++; rep.restarts++; await restartPull(); continue; }
      throw e;
    }
    const page = await core.call('decodePull', body);
    await storePage(page, rep);
    done += page.records.length;
    progress({ phase: 'pull', done, total: 0 });
    if (!page.more) break;
    if (page.cursor === cursor && page.records.length === 0) throw new Error('pull: the server says more but its cursor does not move');
  }
  return finishResync(rep);
}

async function restartPull() {
  await tx(['records', 'resync', 'meta'], 'readwrite', async (s) => {
    for (const k of await p(s.records.getAllKeys())) s.resync.put(true, k);
    s.meta.delete('cursor');
  });
}

// storePage merges one page into the server and local copies, advances
// the clock and stores the cursor, in one transaction.
async function storePage(page, rep) {
  await tx(['records', 'server', 'resync', 'meta'], 'readwrite', async (s) => {
    const m = await metaAll(s.meta);
    let clock = m.clock || '';
    const nowISO = now().toISOString();
    const seen = new Map();
    for (const inc of page.records) {
      const id = JSON.parse(inc).id;
      let cur = seen.get(id);
      if (!cur) {
        const [srv, loc] = await Promise.all([p(s.server.get(id)), p(s.records.get(id))]);
        cur = { server: srv ?? null, local: loc?.raw ?? null };
      }
      const out = C('pulled', { clock, replica: m.device_id, now: nowISO, items: [{ incoming: inc, server: cur.server, local: cur.local }] });
      clock = out.clock;
      const r = out.results[0];
      if (r.skipped) { rep.skipped++; continue; }
      seen.set(id, { server: r.server, local: r.local });
      s.server.put(r.server, id);
      s.records.put({ id, raw: r.local, view: r.view }, id);
      s.resync.delete(id);
      rep.pulled++;
    }
    s.meta.put(clock, 'clock');
    if (page.cursor) s.meta.put(page.cursor, 'cursor'); else s.meta.delete('cursor');
    if (page.server_time) s.meta.put(String(Date.parse(page.server_time) - Date.now()), 'server_offset');
  });
}

// finishResync handles records a full pull after 410 did not bring back:
// one this phone wrote to is queued again as a whole (the server lost
// it); any other is dropped.
async function finishResync(rep) {
  return tx(['resync', 'records', 'server', 'rejected', 'outbox', 'pending', 'meta'], 'readwrite', async (s) => {
    const ids = await p(s.resync.getAllKeys());
    if (!ids.length) return false;
    const dev = await p(s.meta.get('device_id'));
    const rej = await p(s.rejected.getAll());
    let queued = false;
    for (const id of ids) {
      s.resync.delete(id);
      const r = await p(s.records.get(id));
      if (!r) continue;
      if (rej.some((x) => x.record_id === id)) continue;
      if (!C('wroteTo', { record: r.raw, replica: dev })) { s.records.delete(id); s.server.delete(id); continue; }
      await enqueue(s, id, r.raw, {});
      rep.requeued++; queued = true;
    }
    return queued;
  });
}

// uploadPhotos uploads every photo not yet complete on the server. A
// problem with one photo is noted on it and the others go on; a network
// failure ends the sync.
async function uploadPhotos(lim, rep, progress) {
  const todo = (await db.all('photos')).filter((ph) => ph.state !== 'done');
  const total = todo.reduce((n, ph) => n + ph.size, 0);
  let done = 0;
  for (const ph of todo) {
    const blob = await db.get('blobs', ph.sha256);
    try {
      const sent = await uploadPhoto({
        http, photo: ph, blob, chunkBytes: lim.chunk_bytes,
        onReceived: (off) => updatePhoto(ph.sha256, (q) => { q.state = 'uploading'; q.received = off; }),
        progress: (n) => progress({ phase: 'photos', done: done + n, total }),
      });
      rep.photos++; rep.photo_bytes += sent;
      await photoDone(ph.sha256);
    } catch (e) {
      await updatePhoto(ph.sha256, (q) => { q.last_error = e.message; });
      if (!(e instanceof PhotoError)) throw e;
    }
    done += ph.size;
    progress({ phase: 'photos', done, total });
  }
}

async function updatePhoto(sha, f) {
  await tx(['photos'], 'readwrite', async (s) => {
    const q = await p(s.photos.get(sha));
    if (!q) return;
    f(q);
    s.photos.put(q, sha);
  });
}

// photoDone marks a photo complete on the server and only then frees its
// bytes (the thumbnail stays for the lists).
async function photoDone(sha) {
  await tx(['photos', 'blobs'], 'readwrite', async (s) => {
    const q = await p(s.photos.get(sha));
    if (!q) return;
    Object.assign(q, { state: 'done', received: q.size, last_error: '', done_at: now().toISOString() });
    s.photos.put(q, sha);
    s.blobs.delete(sha);
  });
}

// fetchThumbs keeps small copies of the photos of open hazards that this
// phone does not have, so that the school list shows them offline.
async function fetchThumbs() {
  const have = new Set(await tx(['thumbs'], 'readonly', (s) => p(s.thumbs.getAllKeys())));
  const want = [];
  for (const r of await db.all('records')) {
    const h = r.view?.hazard;
    if (!h || r.view.deleted || !['reported', 'confirmed', 'notice_issued', 'rectifying', 'pending_verification', 'escalated'].includes(h.status)) continue;
    for (const ph of r.view.photos || []) if (!have.has(ph.sha256)) want.push(ph.sha256);
  }
  for (const sha of want.slice(0, 40)) {
    try {
      const u = await http('GET', `/v1/blobs/${sha}/url?variant=320`);
      const resp = await fetch(u.url);
      if (resp.ok) await db.put('thumbs', sha, await resp.blob());
    } catch { /* later */ }
  }
}
