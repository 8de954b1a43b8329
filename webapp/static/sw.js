// sw.js: the service worker of the inspector's app. It keeps the whole
// app shell (every file of the app, listed by the server when it serves
// this file, with the app's version) so the app opens with no network at
// all, and replaces it as a whole when the server has a new version. API
// calls (/v1/…) always go to the network: records live in IndexedDB.
const VERSION = "__VERSION__";
const SHELL = ["__SHELL__"];
const CACHE = 'fieldsync-app-' + VERSION;

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(SHELL.map((p) => new Request(p, { cache: 'no-cache' })));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const k of await caches.keys()) if (k.startsWith('fieldsync-app-') && k !== CACHE) await caches.delete(k);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin || !url.pathname.startsWith('/app/')) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const path = url.pathname === '/app/' || url.pathname === '/app/index.html' ? './' : url.pathname;
    const hit = await cache.match(path, { ignoreSearch: true });
    if (hit) return hit;
    try {
      return await fetch(event.request);
    } catch (e) {
      const start = await cache.match('./');
      if (start && event.request.mode === 'navigate') return start;
      throw e;
    }
  })());
});

// Background Sync: the browser wakes the worker when the network is back;
// the sync engine runs in the page, so the worker asks open pages to sync.
self.addEventListener('sync', (event) => {
  if (event.tag !== 'fieldsync') return;
  event.waitUntil((async () => {
    for (const c of await self.clients.matchAll({ type: 'window' })) c.postMessage({ type: 'sync' });
  })());
});
