// db.js: the phone's database in IndexedDB. The object stores mirror the
// bbolt buckets of the Go engine (mobile/store.go):
//
//   meta      key → value: device_id, clock, cursor, token, author, limits…
//   records   record id → {id, raw, view}: the local record (server state
//             joined with every local edit) as the core's canonical JSON,
//             and its view for the lists
//   server    record id → raw: the join of every state pulled
//   outbox    seq (auto) → {op_id, record_id, delta, base, batch, created_at}
//   pending   record id → seq of the record's newest never-sent entry
//   photos    sha256 → {sha256, size, content_type, state, received, …}
//   blobs     sha256 → Blob: the photo's bytes, kept until the server has it
//   rejected  op id → {change, record_kind, error, at}
//   resync    record id → true: held before a pull restarted from scratch
//   drafts    key → {values, updated_at}: forms being filled in, saved on
//             every field, before they enter the outbox
//   thumbs    sha256 → Blob: thumbnails of server photos, for offline lists
//
// Nothing is deleted from the phone until the server has confirmed it:
// outbox entries leave on a push result, photo bytes when the server says
// the photo is complete under its hash.

const NAME = 'fieldsync';
const VERSION = 1;
export const STORES = ['meta', 'records', 'server', 'outbox', 'pending', 'photos', 'blobs', 'rejected', 'resync', 'drafts', 'thumbs'];

let dbp = null;

export function open() {
  if (dbp) return dbp;
  dbp = new Promise((resolve, reject) => {
    const req = indexedDB.open(NAME, VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      for (const s of STORES) {
        if (db.objectStoreNames.contains(s)) continue;
        if (s === 'outbox') db.createObjectStore(s, { autoIncrement: true });
        else db.createObjectStore(s);
      }
    };
    req.onsuccess = () => {
      const db = req.result;
      db.onversionchange = () => db.close();
      resolve(db);
    };
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error('数据库被另一个窗口占用 / the database is open in another tab'));
  });
  return dbp;
}

// p turns an IDBRequest into a promise.
export function p(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

// tx runs fn(stores) in one read-write (or read-only) transaction over the
// named stores and resolves with fn's result once the transaction has
// committed; a thrown error aborts it, so nothing is half-written. fn may
// await IndexedDB requests (p(...)) but nothing else.
export async function tx(names, mode, fn) {
  const db = await open();
  const t = db.transaction(names, mode, { durability: 'strict' });
  const stores = {};
  for (const n of names) stores[n] = t.objectStore(n);
  const done = new Promise((resolve, reject) => {
    t.oncomplete = () => resolve();
    t.onabort = () => reject(t.error || new Error('transaction aborted'));
    t.onerror = () => reject(t.error);
  });
  let result;
  try {
    result = await fn(stores, t);
  } catch (e) {
    try { t.abort(); } catch { /* already finished */ }
    await done.catch(() => {});
    throw e;
  }
  await done;
  return result;
}

export const get = (name, key) => tx([name], 'readonly', (s) => p(s[name].get(key)));
export const all = (name) => tx([name], 'readonly', (s) => p(s[name].getAll()));
export const put = (name, key, value) => tx([name], 'readwrite', (s) => p(s[name].put(value, key)));
export const del = (name, key) => tx([name], 'readwrite', (s) => p(s[name].delete(key)));
export const count = (name) => tx([name], 'readonly', (s) => p(s[name].count()));

// entries lists [key, value] pairs of a store in key order.
export async function entries(name) {
  return tx([name], 'readonly', async (s) => {
    const [keys, vals] = await Promise.all([p(s[name].getAllKeys()), p(s[name].getAll())]);
    return keys.map((k, i) => [k, vals[i]]);
  });
}

export async function getMeta(key) {
  return (await get('meta', key)) ?? '';
}

export async function setMeta(values) {
  return tx(['meta'], 'readwrite', async (s) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === '' || v == null) s.meta.delete(k);
      else s.meta.put(v, k);
    }
  });
}

// estimate returns the origin's storage use and quota in bytes, and
// whether the browser promised not to evict it.
export async function estimate() {
  const out = { usage: 0, quota: 0, persisted: false };
  if (navigator.storage?.estimate) Object.assign(out, await navigator.storage.estimate());
  if (navigator.storage?.persisted) out.persisted = await navigator.storage.persisted();
  return out;
}
