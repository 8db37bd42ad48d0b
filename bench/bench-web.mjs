// bench-web.mjs: the timings and memory of bench-web.sh (which starts the daemon and says what
// is measured). env: URL, TOKEN, SPID (the daemon's pid), CHROMIUM, TEST_NPM.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const require = createRequire(path.join(process.env.TEST_NPM, 'package.json'));
const { chromium } = require('playwright-core');
const { URL: BASE, TOKEN, SPID, CHROMIUM } = process.env;
const status = (k) => Number((fs.readFileSync(`/proc/${SPID}/status`, 'utf8').match(new RegExp(k + ':\\s+(\\d+)')) || [0, 0])[1]);
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };

const browser = await chromium.launch({
  executablePath: CHROMIUM, headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const loads = [], dcl = [];
for (let i = 0; i < 10; i++) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const t0 = Date.now();
  await page.goto(BASE + '/#token=' + TOKEN + '&group=main');
  await page.waitForSelector('body[data-ready="1"] #messages li.out');
  loads.push(Date.now() - t0);
  dcl.push(await page.evaluate(() => performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd));
  await ctx.close();
}
console.log(`web: page load to interactive (history drawn): median ${median(loads)} ms, max ${Math.max(...loads)} ms; DOMContentLoaded median ${median(dcl).toFixed(0)} ms (10 fresh loads)`);

const idle = status('VmRSS');
const pages = [];
for (let g = 1; g <= 5; g++) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(BASE + '/#token=' + TOKEN + '&group=g' + g);
  await page.waitForSelector('body[data-ready="1"]');
  pages.push(page);
}
const open = status('VmRSS');
const t0 = Date.now();
for (let round = 0; round < 4; round++) {
  await Promise.all(pages.map((p, i) => fetch(BASE + '/api/v1/groups/g' + (i + 1) + '/messages', {
    method: 'POST', headers: { Authorization: 'Bearer ' + TOKEN, 'Content-Type': 'application/json' },
    body: JSON.stringify({ text: 'stream ' + round }),
  })));
  await Promise.all(pages.map((p) => p.waitForFunction((n) => document.querySelectorAll('#messages li.out:not(.pending)').length >= n, round + 1, { timeout: 120000 })));
}
const streamed = status('VmRSS');
console.log(`web: daemon RSS ${(idle / 1024).toFixed(1)} MiB before, ${(open / 1024).toFixed(1)} MiB with 5 pages open, ${(streamed / 1024).toFixed(1)} MiB after 20 replies of 64 KiB streamed to them (peak ${(status('VmHWM') / 1024).toFixed(1)} MiB; ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
await browser.close();
