// core.js: loads the WebAssembly core (webapp/core, compiled from the Go
// packages syncproto and forms) and calls it. Every edit, merge, form
// check and hazard fold goes through here, so the app agrees with the Go
// phone engine and the server byte for byte. Records travel as the core's
// canonical JSON text and are stored as such.

let ready = null;
export const timing = { start: 0, fetched: 0, ready: 0 };

export class CoreError extends Error {
  constructor(e) {
    super(e.message || e.code);
    this.code = e.code;
    this.fields = e.fields || {};
  }
}

// load starts the core once; the app calls it at start, in the
// background, and awaits it only when it needs it.
export function load() {
  if (ready) return ready;
  ready = (async () => {
    timing.start = performance.now();
    if (!globalThis.Go) await import('./wasm_exec.js');
    const go = new globalThis.Go();
    const loaded = new Promise((resolve) => { globalThis.fieldsyncCoreReady = resolve; });
    const url = new URL('../core.wasm', import.meta.url);
    let result;
    if (WebAssembly.instantiateStreaming) {
      result = await WebAssembly.instantiateStreaming(fetch(url), go.importObject);
    } else {
      const buf = await (await fetch(url)).arrayBuffer();
      result = await WebAssembly.instantiate(buf, go.importObject);
    }
    timing.fetched = performance.now();
    go.run(result.instance).catch((e) => console.error('core stopped', e));
    await loaded;
    timing.ready = performance.now();
    return globalThis.fieldsyncCore;
  })();
  ready.catch(() => { ready = null; });
  return ready;
}

// text calls an entry point and returns its answer as text (a push body).
export async function text(name, req) {
  const c = await load();
  const out = c.call(name, typeof req === 'string' ? req : JSON.stringify(req));
  if (out.startsWith('{"error":')) throw new CoreError(JSON.parse(out).error);
  return out;
}

// call calls an entry point and returns its parsed answer.
export async function call(name, req) {
  return JSON.parse(await text(name, req));
}
