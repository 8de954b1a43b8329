// console.js: the office console in Chromium at 1366×768, one phase of
// the hazard scenario per run (the Go test moves the phone in between).
//
//   a: the reviewer signs in, finds the phone's hazard in the queue, sees
//      both photos load, confirms it and issues a notice with a deadline.
//   b: the reviewer sees the after photo, tries to verify by document
//      review: refused for a high-severity hazard.
//   c: the reviewer's closing is refused; the office head closes it.
//   d: two phones changed the location concurrently: the reviewer sees
//      both values side by side in the conflict inbox and chooses one.
const h = require(process.env.BROWSERTEST_HARNESS);
const { check, log, shot } = h;

async function desk(browser) {
  // bypassCSP lets axe-core be injected past the console's Content-Security-Policy.
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai', bypassCSP: true });
  ctx.setDefaultTimeout(60000);
  return ctx;
}

async function signIn(page, url, login, password) {
  await page.goto(url + '/console/hazards');
  await page.waitForSelector('#f-login'); // redirected to the sign-in page
  await page.fill('#f-login', login);
  await page.fill('#f-password', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('table.queue');
}

// photos waits for the images of a phase to load and returns their
// natural widths (0 for one that did not load).
async function photos(page, phase) {
  const sel = `section.phase:has(h3:has-text("${phase}")) img`;
  const imgs = await page.$$(sel);
  for (const img of imgs) {
    await img.scrollIntoViewIfNeeded();
    await page.waitForFunction((el) => el.complete, img, { timeout: 30000 });
  }
  return page.$$eval(sel, (els) => els.map((el) => el.naturalWidth));
}

async function act(page, action, fields = {}) {
  await page.selectOption('#f-action', action);
  for (const [sel, v] of Object.entries(fields)) await page.fill(sel, v);
  await Promise.all([page.waitForLoadState('load'), page.click('#do-act')]);
  await page.waitForSelector('#status');
  return {
    status: await page.getAttribute('#status', 'data-status'),
    error: (await page.$('.error-summary')) ? (await page.textContent('.error-summary')).trim() : '',
    flash: (await page.$('.flash')) ? (await page.textContent('.flash')).trim() : '',
  };
}

h.main(async ({ input, browser }) => {
  const out = {};
  const ctx = await desk(browser);
  const page = await ctx.newPage();
  const bytes = {};
  page.on('response', async (r) => {
    if (r.request().resourceType() === 'document' || r.url().includes('/console/static/')) {
      const b = await r.body().catch(() => Buffer.alloc(0));
      bytes[r.url()] = b.length;
    }
  });
  await signIn(page, input.url, input.reviewer.login, input.reviewer.password);
  out.cookieVisibleToScript = await page.evaluate(() => document.cookie.includes('fs_session'));
  const detail = input.url + '/console/hazards/' + input.hazard;

  if (input.phase === 'a') {
    // The queue: the hazard is there, reported, with the counts per status.
    const row = page.locator(`tr[data-id="${input.hazard}"]`);
    await row.waitFor();
    out.rowText = (await row.textContent()).replace(/\s+/g, ' ').trim();
    out.reportedCount = Number(await page.textContent('.tabs a[data-status="reported"] b'));
    await shot(page, 'queue');
    out.queueBytes = bytes[page.url()] || 0;
    out.violations = await h.axe(page);
    await page.click(`tr[data-id="${input.hazard}"] a`);
    await page.waitForSelector('#status');
    out.before = await photos(page, '整改前');
    await shot(page, 'detail-reported');
    out.violations = out.violations.concat(await h.axe(page));
    out.detailBytes = Object.values(bytes).reduce((a, b) => a + b, 0);
    out.confirm = await act(page, 'confirm', { '#f-reason': '现场照片核实，隐患属实。' });
    out.notice = await act(page, 'notice', {
      '#f-reason': '请学校限期整改。', '#f-deadline': input.deadline, '#f-responsible': '黄卫东（总务主任）',
      '#f-phone': '13800000131', '#f-items': '更换裸露电线\n加装线槽并张贴警示标识',
    });
    await shot(page, 'detail-notice');
  }
  if (input.phase === 'b') {
    await page.goto(detail);
    out.after = await photos(page, '整改后');
    out.verify = await act(page, 'verify', { '#f-reason': '照片显示已整改。' });
    await shot(page, 'detail-verify-refused');
  }
  if (input.phase === 'c') {
    await page.goto(detail);
    out.reviewerClose = await act(page, 'close', { '#f-reason': '复查合格，申请消号。' });
    await shot(page, 'detail-close-refused');
    const ctx2 = await desk(browser);
    const head = await ctx2.newPage();
    await signIn(head, input.url, input.head.login, input.head.password);
    await head.goto(detail);
    out.headClose = await act(head, 'close', { '#f-reason': '督导室主任审核，同意消号。' });
    out.timeline = (await head.$$eval('.timeline li .what b', (els) => els.map((e) => e.textContent)));
    await shot(head, 'detail-closed');
    await head.locator('.timeline').scrollIntoViewIfNeeded();
    await shot(head, 'detail-closed-timeline');
    await head.goto(input.url + '/console/hazards?status=closed');
    await shot(head, 'queue-closed');
  }
  if (input.phase === 'd') {
    await page.goto(input.url + '/console/conflicts');
    const sec = page.locator(`section.conflict[data-id="${input.hazard}/location_desc"]`);
    await sec.waitFor();
    out.versions = await sec.locator('.version .value').allTextContents();
    await shot(page, 'conflicts');
    const first = sec.locator('form.version').first();
    await first.locator('input[name=reason]').fill('以督学甲现场记录为准');
    await Promise.all([page.waitForURL('**/console/conflicts?done=1'), first.locator('button').click()]);
    out.flash = (await page.textContent('.flash')).trim();
    out.left = await page.locator('section.conflict').count();
    await shot(page, 'conflicts-resolved');
  }
  log(JSON.stringify(out));
  return out;
});
