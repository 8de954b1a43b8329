// dashboard.js: the office console's dashboard (报表) in Chromium at
// 1366×768. The reviewer signs in, opens the dashboard from the nav, picks
// the period and the zone, and the script reads every chart's data points
// (class "point", data-series/data-label/data-value), follows the zone's
// visit count to its records and one record, and downloads the hazard
// ledger as XLSX and CSV. The Go test compares all of it with the API.
const path = require('path');
const h = require(process.env.BROWSERTEST_HARNESS);
const { check, log } = h;

h.main(async ({ input, browser }) => {
  const out = {};
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai', acceptDownloads: true });
  ctx.setDefaultTimeout(60000);
  const page = await ctx.newPage();
  const bytes = {};
  // What the browser complains about (a CSP violation, a failed asset).
  out.ConsoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) out.ConsoleErrors.push(m.text()); });
  // A failed load, with its address (the console has no favicon: not ours).
  page.on('response', (r) => { if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) out.ConsoleErrors.push(`${r.status()} ${r.url()}`); });
  page.on('response', async (r) => {
    if (r.request().resourceType() === 'document' || r.url().includes('/console/static/')) {
      const b = await r.body().catch(() => Buffer.alloc(0));
      bytes[r.url()] = b.length;
    }
  });

  await page.goto(input.url + '/console/hazards');
  await page.waitForSelector('#f-login');
  await page.fill('#f-login', input.reviewer.login);
  await page.fill('#f-password', input.reviewer.password);
  await page.click('button[type=submit]');
  await page.waitForSelector('table.queue');

  // From the nav to the dashboard, then the filter.
  await Promise.all([page.waitForURL(/\/console\/reports/), page.click('header nav a[href="/console/reports"]')]);
  await page.waitForSelector('figure.chart svg');
  await page.selectOption('#f-period', input.period);
  await page.selectOption('#f-zone', input.zone);
  await Promise.all([page.waitForURL(/zone=/), page.click('form.filters button[type=submit]')]);
  await page.waitForSelector('figure.chart svg');
  out.URL = page.url();
  out.PageBytes = Object.entries(bytes).filter(([u]) => u === page.url() || u.includes('/console/static/')).reduce((a, [, b]) => a + b, 0);

  // The charts: their data points.
  out.Charts = await page.$$eval('figure.chart', (figs) => {
    const res = {};
    for (const f of figs) {
      const pts = [...f.querySelectorAll('svg .point')];
      const series = {};
      for (const p of pts) (series[p.dataset.series] ||= []).push(Number(p.dataset.value));
      res[f.dataset.chart] = { Period: f.dataset.period, Points: pts.length, Declared: Number(f.dataset.points), Series: series };
    }
    return res;
  });
  log('charts', JSON.stringify(Object.fromEntries(Object.entries(out.Charts).map(([k, v]) => [k, v.Points]))));
  check(Object.keys(out.Charts).length === 6, 'six charts');
  await page.screenshot({ path: path.join(process.env.BROWSERTEST_ARTIFACTS, 'dashboard.png'), fullPage: true });
  // axe is injected as a script, which the console's CSP forbids: it
  // audits the same page in a context of the same session that bypasses
  // CSP (the page itself ran under the CSP above).
  const audit = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'zh-CN', bypassCSP: true, storageState: await ctx.storageState() });
  const ap = await audit.newPage();
  await ap.goto(page.url());
  out.Axe = await h.axe(ap);
  await audit.close();
  log('axe', JSON.stringify(out.Axe));

  // Downloads through the session.
  for (const [sel, key, file] of [['#dl-hazards-xlsx', 'XLSXName', input.xlsx], ['#dl-hazards-csv', 'CSVName', input.csv]]) {
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click(sel)]);
    await dl.saveAs(file);
    out[key] = dl.suggestedFilename();
    log('downloaded', out[key], await dl.failure());
  }

  // Every number has a source: the zone's visits.
  const link = page.locator('#zones tbody tr').first().locator('td').nth(1).locator('a.num');
  out.VisitsLink = (await link.textContent()).trim();
  await Promise.all([page.waitForURL(/\/console\/reports\/source/), link.click()]);
  await page.waitForSelector('#sources');
  out.SourceDone = (await page.textContent('#done')).trim();
  out.SourceLinks = await page.locator('#sources a.record').count();
  await page.screenshot({ path: path.join(process.env.BROWSERTEST_ARTIFACTS, 'dashboard-source.png'), fullPage: false });
  const [resp] = await Promise.all([page.waitForResponse((r) => r.request().resourceType() === 'document'), page.locator('#sources a.record').first().click()]);
  await page.waitForLoadState('load');
  out.RecordStatus = resp.status();
  out.RecordTitle = await page.title();
  return out;
});
