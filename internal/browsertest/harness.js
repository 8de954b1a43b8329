// harness.js: what every browser test script of fieldsync needs, run by
// internal/browsertest (Run) under deploy/browser.sh, which sets NODE_PATH
// to the project's playwright-core. A script:
//
//   const h = require(process.env.BROWSERTEST_HARNESS);
//   h.main(async ({ input, browser }) => { …; return result; });
//
// input is the Go test's input; the returned value is the test's result.
// Browsers are Debian's Chromium, headless, with the flags the build
// machines need; phone() opens a 375×812 touch context; throttle() slows
// the CPU through the DevTools protocol (Emulation.setCPUThrottlingRate);
// shot() keeps a screenshot in the test's artifacts; axe() runs axe-core.
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];
const artifacts = process.env.BROWSERTEST_ARTIFACTS || '.';

async function launch() {
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ARGS, headless: true });
}

// phone opens a context the size of a phone screen, with touch, Chinese
// locale and Beijing time; opts go to browser.newContext.
async function phone(browser, opts = {}) {
  const ctx = await browser.newContext({
    viewport: { width: 375, height: 812 }, deviceScaleFactor: 1, isMobile: true, hasTouch: true,
    locale: 'zh-CN', timezoneId: 'Asia/Shanghai', ...opts,
  });
  ctx.setDefaultTimeout(60000);
  return ctx;
}

// throttle slows the page's CPU rate times, as a low-end Android phone.
async function throttle(page, rate = 4) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Emulation.setCPUThrottlingRate', { rate });
  return cdp;
}

let shots = 0;
async function shot(page, name) {
  const file = path.join(artifacts, `${String(++shots).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  log('screenshot', file);
  return file;
}

// axe runs axe-core on the page and returns the violations of WCAG A/AA
// rules (contrast, labels, names).
async function axe(page) {
  const src = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  await page.addScriptTag({ content: src });
  const res = await page.evaluate(async () => globalThis.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } }));
  return res.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
}

function log(...a) { console.log(new Date().toISOString().slice(11, 23), ...a); }

// main runs the script's body with its input and writes its result.
function main(body) {
  (async () => {
    const input = JSON.parse(fs.readFileSync(process.env.BROWSERTEST_INPUT, 'utf8'));
    const browser = await launch();
    try {
      const out = await body({ input, browser });
      fs.writeFileSync(process.env.BROWSERTEST_OUTPUT, JSON.stringify(out ?? {}, null, 2));
    } catch (e) {
      // Keep what every open page showed when the script failed.
      for (const ctx of browser.contexts()) for (const pg of ctx.pages()) await shot(pg, 'failure').catch(() => {});
      throw e;
    } finally {
      await browser.close();
    }
  })().catch((e) => { console.error(e); process.exit(1); });
}

// check throws when cond is false: a failed expectation of the script.
function check(cond, msg) { if (!cond) throw new Error('check failed: ' + msg); }

module.exports = { launch, phone, throttle, shot, axe, log, main, check, ARGS };
