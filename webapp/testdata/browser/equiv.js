// equiv.js: runs a concurrent-edit scenario with two browser phones, the
// same steps the Go test runs with two Go-engine phones: each step sets
// the phone's clock (Playwright's clock) and saves a draft or syncs,
// through the app's engine (window.fieldsync.engine), as the Go test
// calls mobile.Engine.Save and Sync.
const h = require(process.env.BROWSERTEST_HARNESS);
const { log } = h;

h.main(async ({ input, browser }) => {
  const phones = {};
  for (const name of Object.keys(input.codes)) {
    const ctx = await h.phone(browser);
    const page = await ctx.newPage();
    page.on('pageerror', (e) => log(name, 'pageerror', e.message));
    await ctx.clock.setFixedTime(new Date(input.steps[0].at));
    await page.goto(input.url + '/app/');
    await page.waitForSelector('#code');
    await page.evaluate(async ({ code, dev }) => globalThis.fieldsync.engine.enroll(code, 'browser', { deviceId: dev }), { code: input.codes[name], dev: input.devices[name] });
    phones[name] = page;
  }
  const reports = [];
  for (const [i, st] of input.steps.entries()) {
    const page = phones[st.phone];
    await page.context().clock.setFixedTime(new Date(st.at));
    const out = await page.evaluate(async (st) => {
      const { engine } = globalThis.fieldsync;
      if (st.op === 'sync') { const r = await engine.sync(); return { pushed: r.pushed, pulled: r.pulled, conflicts: r.conflicts, rejected: r.rejected }; }
      const o = await engine.save(st.draft);
      return { saved: o.view.id };
    }, st);
    log(i, st.phone, st.op, JSON.stringify(out));
    reports.push(out);
  }
  return { reports };
});
