// budget.js: the app's Lighthouse-style budget on a low-end phone (CPU
// slowed ×4): the cold start (nothing cached: the shell on screen, the
// WebAssembly core ready), the warm start (service worker and the
// browser's compiled-code cache), and IndexedDB's size after 500 records.
const h = require(process.env.BROWSERTEST_HARNESS);
const { log } = h;

async function start(page, url) {
  await page.goto(url);
  await page.waitForFunction(() => document.documentElement.dataset.ready === '1');
  return page.evaluate(async () => {
    await globalThis.fieldsync.core.load();
    const t = globalThis.fieldsync.core.timing;
    const nav = performance.getEntriesByType('navigation')[0];
    const res = performance.getEntriesByType('resource');
    return { firstScreenMs: Math.round(globalThis.fieldsync.marks.firstScreen + (nav?.domInteractive || 0)), coreReadyMs: Math.round(t.ready),
      coreLoadMs: Math.round(t.ready - t.start), requests: res.length + 1, transferred: res.reduce((n, r) => n + (r.transferSize || 0), nav?.transferSize || 0) };
  });
}

h.main(async ({ input, browser }) => {
  const ctx = await h.phone(browser);
  const page = await ctx.newPage();
  await h.throttle(page, 4);
  const cold = await start(page, input.url + '/app/');
  log('cold', JSON.stringify(cold));
  await page.evaluate(async () => { await navigator.serviceWorker.ready; });
  await page.reload();
  await page.waitForFunction(() => !!navigator.serviceWorker.controller);
  const warm = await start(page, input.url + '/app/');
  log('warm', JSON.stringify(warm));
  await page.evaluate(async (code) => globalThis.fieldsync.engine.enroll(code, 'budget'), input.code);
  const usage = () => page.evaluate(async () => (await navigator.storage.estimate()).usageDetails?.indexedDB ?? null);
  const before = await usage();
  // 500 lesson observations, as a month of visits' worth: saved through the
  // engine like the screens do (validated, versioned, queued).
  await h.throttle(page, 1);
  const t0 = Date.now();
  await page.evaluate(async ({ n, school, user }) => {
    const { engine } = globalThis.fieldsync;
    for (let i = 0; i < n; i++) {
      await engine.save({ kind: 'lesson_observation', school_id: school, form_id: 'lesson_observation', form_version: 1, values: {
        school_id: school, observer_id: user, mode: 'random', started_at: '2026-11-20T09:40:00+08:00', duration_min: 45, teacher_name: '教师' + i,
        grade: '八年级', subject: '数学', course_type: 'general', status: 'draft', strengths: '课堂提问有层次，学生参与积极。', problems: '板书偏小，后排学生看不清。' } });
    }
  }, { n: input.records, school: input.school, user: input.user });
  const saveMs = Date.now() - t0;
  const after = await usage();
  const st = await page.evaluate(async () => globalThis.fieldsync.engine.status());
  log('indexedDB', before, '→', after, 'bytes;', st.outbox, 'in the outbox;', saveMs, 'ms to save');
  return { cold, warm, idbBefore: before, idbAfter: after, outbox: st.outbox, records: st.records, saveMs };
});
