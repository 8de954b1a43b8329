// day.js: an inspector's day in a village school without signal, on a
// phone-sized Chromium with the CPU slowed ×4. Enroll online, go offline,
// reload (the app must still open), fill a visit, a lesson observation
// (the total and band update live) and a hazard with a camera photo, then
// come back online and sync. Returns what the Go test checks on the server.
const h = require(process.env.BROWSERTEST_HARNESS);
const { check, log, shot } = h;

h.main(async ({ input, browser }) => {
  const ctx = await h.phone(browser);
  const page = await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') log('page', m.type(), m.text()); });
  page.on('pageerror', (e) => log('pageerror', e.message));
  await h.throttle(page, 4);
  const t0 = Date.now();
  await page.goto(input.url + '/app/');
  await page.waitForSelector('#code');
  const coldShell = Date.now() - t0;
  await shot(page, 'enroll');
  await page.fill('#code', input.code);
  await page.click('button[type=submit]');
  await page.waitForSelector('text=东河县第二初级中学', { timeout: 120000 }).catch(async (e) => { await shot(page, 'enroll-failed'); throw e; });
  const coreReady = await page.evaluate(async () => { await globalThis.fieldsync.core.load(); return globalThis.fieldsync.core.timing; });
  await page.evaluate(async () => { await navigator.serviceWorker.ready; });
  // The service worker controls pages loaded after it activated.
  await page.reload();
  await page.waitForFunction(() => !!navigator.serviceWorker.controller);
  await page.goto(input.url + '/app/#/schools');
  await page.waitForSelector('text=东河县第二初级中学');
  await shot(page, 'schools');
  const persisted = await page.evaluate(() => navigator.storage.persisted());

  // No signal from here on.
  await ctx.setOffline(true);
  await page.reload();
  await page.waitForSelector('text=东河县第二初级中学');
  // The phone may think it is online; the app's chip says whether the
  // server can be reached, in grey, not as an error.
  await page.waitForSelector('#net.off');
  check((await page.textContent('#net')).includes('离线'), 'the offline chip is shown');
  await shot(page, 'offline-reload');

  await page.click('a.card:has-text("东河县第二初级中学")');
  await page.click('text=开始进校');
  await page.waitForSelector('text=成绩与亮点');
  await page.getByLabel('成绩与亮点').fill('课间操组织有序，学生精神面貌好。');
  await page.getByLabel('发现的问题').fill('二楼楼梯灯不亮。');
  await shot(page, 'visit');
  await page.click('text=保存 Save');
  await page.waitForSelector('text=报告隐患');

  // A lesson observation: the rubric total and band update as scores are typed.
  await page.click('text=听课评课');
  await page.waitForSelector('text=总分');
  await page.getByLabel('授课教师').fill('刘洋');
  await page.getByLabel('年级').fill('八年级');
  await page.getByLabel('学科').fill('数学');
  await page.click('label:has-text("随堂听课")');
  await page.click('label:has-text("普通课")');
  for (const [i, code, score] of [[0, '教学准备', '9'], [1, '教学目标', '18']]) {
    await page.click('text=＋ 添加');
    const row = page.locator('fieldset .card').nth(i);
    await row.locator(`label:has-text("${code}")`).first().click();
    await row.getByLabel('得分').fill(score);
  }
  await page.waitForFunction(() => /总分 Total：27/.test(document.querySelector('.live')?.textContent || ''));
  const live = await page.textContent('.live');
  await shot(page, 'observation-live-total');
  await page.click('text=保存草稿');
  await page.waitForSelector('text=报告隐患');

  // A hazard, camera first.
  await page.click('text=报告隐患');
  await page.setInputFiles('#camera', input.photo);
  await page.waitForSelector('.thumbs img');
  await page.getByLabel('隐患名称').fill('灭火器压力不足');
  await page.getByLabel('具体位置').fill('教学楼二层东侧');
  await page.getByLabel('隐患描述').fill('两具灭火器压力表指针在红区。');
  await page.click('label:has-text("消防")');
  await shot(page, 'hazard-form');
  await page.click('text=登记隐患 Save');
  await page.waitForSelector('text=跟进 Follow up');
  await shot(page, 'hazard-detail-offline');

  const local = await page.evaluate(async () => {
    const { db } = globalThis.fieldsync;
    const recs = (await db.all('records')).map((r) => r.view).filter((v) => ['visit', 'lesson_observation', 'hazard', 'attachment'].includes(v.kind));
    const photos = await db.all('photos');
    const sums = {};
    for (const p of photos) {
      const b = await db.get('blobs', p.sha256);
      const d = await crypto.subtle.digest('SHA-256', await b.arrayBuffer());
      sums[p.sha256] = { size: b.size, sha256: [...new Uint8Array(d)].map((x) => x.toString(16).padStart(2, '0')).join(''), type: b.type };
    }
    return { records: recs.map((v) => ({ id: v.id, kind: v.kind, school_id: v.school_id, values: v.values })), photos: sums, status: await globalThis.fieldsync.engine.status() };
  });
  check(local.status.outbox >= 4, 'the edits wait in the outbox: ' + local.status.outbox);
  await page.click('[data-tab=sync]');
  await page.waitForSelector('text=立即同步');
  await shot(page, 'sync-waiting');

  // Back in signal: sync from the sync screen.
  await ctx.setOffline(false);
  await page.click('#syncnow');
  await page.waitForFunction(async () => (await globalThis.fieldsync.engine.status()).lastSync?.finished && !(await globalThis.fieldsync.engine.status()).outbox, null, { timeout: 180000 });
  await page.waitForFunction(async () => (await globalThis.fieldsync.engine.status()).photos === 0, null, { timeout: 180000 });
  await page.goto(input.url + '/app/#/sync');
  await page.waitForSelector('text=全部已同步');
  await shot(page, 'synced');
  await page.goto(input.url + '/app/#/today');
  await page.waitForSelector('text=需要跟进的隐患');
  await shot(page, 'today');
  const violations = await h.axe(page);
  const after = await page.evaluate(async () => globalThis.fieldsync.engine.status());
  return { local, after, live, coldShellMs: coldShell, core: coreReady, persisted, violations };
});
