// web-test.mjs: the web app in Debian's chromium, driven by playwright-core (no browser
// download), against the real clawbox serve that test-web.sh started with the fake model
// (tests/data/scenarios/web.json). Prints TAP; test-web.sh relays it.
//
// env: URL (http://127.0.0.1:PORT), TOKEN, TOKEN_FILE, NOMODEL_URL (a second daemon with no
// model), NOMODEL_TOKEN, CHROMIUM, TEST_NPM (where playwright-core is installed), SHOTS (a
// folder for the screenshots), WORK (a scratch folder).
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const require = createRequire(path.join(process.env.TEST_NPM, 'package.json'));
const { chromium } = require('playwright-core');

const { URL: BASE, TOKEN, TOKEN_FILE, NOMODEL_URL, NOMODEL_TOKEN, CHROMIUM, SHOTS, WORK } = process.env;
let n = 0;
let failed = 0;
function ok(cond, desc, detail) {
  n++;
  if (cond) console.log(`ok ${n} - ${desc}`);
  else { failed++; console.log(`not ok ${n} - ${desc}${detail ? ': ' + String(detail).slice(0, 400) : ''}`); }
  return cond;
}
async function step(desc, f) { // a step that throws is one failure, and the rest still run
  try { await f(); } catch (e) { ok(false, desc, e.message); }
}
async function api(method, p, body) {
  const r = await fetch(BASE + p, {
    method, headers: { Authorization: 'Bearer ' + TOKEN, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return r.json();
}
async function until(f, ms, what) { // polls f until it returns a truthy value (bounded)
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 200));
  }
}
const shot = (page, name) => page.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: false });

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
  // playwright gives each launch a fresh, temporary user-data-dir of its own
});
const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 }, acceptDownloads: true });
const page = await ctx.newPage();
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(e.message));
// Refusals the test asks for (400, 401, the 403 of a page that is not an approver) are logged
// by the browser too; anything else counts.
// A 404 is only expected from GET /api/v1/channels on a daemon without the channel
// supervisor (the page then shows its older list): the responses say which URL it was.
page.on('console', (m) => { if (m.type() === 'error' && !/status of 40[0134] /.test(m.text())) pageErrors.push(m.text()); });
page.on('response', (r) => { if (r.status() === 404 && !r.url().endsWith('/api/v1/channels')) pageErrors.push('404: ' + r.url()); });
const T = 30000; // bounds for what depends on runs on a loaded 2-core machine

await step('log in with the token in the URL fragment', async () => {
  const t0 = Date.now();
  await page.goto(BASE + '/#token=' + TOKEN + '&group=family');
  await page.waitForSelector('body[data-ready="1"]', { timeout: T });
  ok(true, 'the page logs in with the token from the URL fragment (' + (Date.now() - t0) + ' ms)');
  ok(!page.url().includes(TOKEN) && !page.url().includes('#'), 'and removes it from the address bar', page.url());
  const opts = await page.$$eval('#group option', (os) => os.map((o) => o.value));
  ok(opts.join(',') === 'main,family,long,ops' + (process.env.EGRESS_ASK ? ',net' : ''), 'the groups are listed', opts);
  ok(await page.isHidden('#no-model'), 'no banner when a model is configured');
});

await step('an injected reply renders inert', async () => {
  await page.waitForSelector('#messages li.out', { timeout: T });
  const r = await page.evaluate(() => {
    const m = document.getElementById('messages');
    return {
      imgs: m.querySelectorAll('img, script, iframe, svg, object, embed').length,
      onattrs: [...m.querySelectorAll('*')].filter((e) => [...e.attributes].some((a) => a.name.startsWith('on'))).length,
      badLinks: [...m.querySelectorAll('a[href]')].filter((a) => !/^https?:|^mailto:/.test(a.getAttribute('href'))).length,
      links: [...m.querySelectorAll('a[href]')].map((a) => [a.getAttribute('href'), a.rel, a.target]),
      inert: [...m.querySelectorAll('a:not([href])')].map((a) => a.textContent),
      text: m.textContent,
      strong: [...m.querySelectorAll('strong')].map((s) => s.textContent),
      items: m.querySelectorAll('li.out ul li').length,
      pre: m.querySelector('li.out pre') ? m.querySelector('li.out pre').textContent : '',
      title: document.title,
      pwned: window.pwned,
    };
  });
  ok(r.imgs === 0, 'no <img>, <script> or <iframe> from the reply reaches the DOM', r.imgs);
  ok(r.onattrs === 0, 'no on* attribute survives', r.onattrs);
  ok(r.badLinks === 0 && r.inert.includes('a bad link'), 'a javascript: link loses its href (its text stays)', JSON.stringify([r.links, r.inert]));
  ok(r.links.length === 1 && r.links[0][0] === 'https://example.org/x' && r.links[0][1].includes('noopener') && r.links[0][2] === '_blank',
    'the http link is kept, opening apart with noopener', JSON.stringify(r.links));
  ok(r.text.includes('<b>bold?</b> & done') && r.text.includes('<script>window.pwned=1</script>'),
    'raw HTML in the reply is shown as text', r.text.slice(0, 200));
  ok(!/[\x1b\x07]/.test(r.text) && r.text.includes('red text') && !r.text.includes('[31m'),
    'ANSI escapes are dropped, their text kept');
  ok(r.strong.includes('strong words') && r.items === 2 && r.pre.includes('code block'),
    'Markdown renders (bold, a list, a code block)', JSON.stringify(r.strong));
  ok(r.title === 'clawbox' && r.pwned === undefined, 'nothing in it ran', r.title);
  await shot(page, 'chat-injection');
});

await step('Enter sends, Shift+Enter is a newline; the tool timeline and the reply stream in', async () => {
  await page.selectOption('#group', 'main');
  await page.waitForFunction(() => document.querySelectorAll('#messages li').length === 0, null, { timeout: T });
  await page.click('#text');
  await page.keyboard.type('line one');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('line two');
  const v = await page.inputValue('#text');
  ok(v === 'line one\nline two', 'Shift+Enter puts a newline in the composer', JSON.stringify(v));
  await page.waitForTimeout(300);
  ok(await page.$$eval('#messages li', (l) => l.length) === 0, 'and sends nothing');
  await page.fill('#text', 'use a tool');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#messages li.in', { timeout: T });
  ok((await page.textContent('#messages li.in')).includes('use a tool'), 'Enter sends the message');
  ok(await page.inputValue('#text') === '', 'and empties the composer');
  // The model's reply comes 2.5 s after the tools ran: the timeline shows before it.
  await page.waitForSelector('#messages li.out.pending .tools li.call .tool-result.ok', { timeout: T });
  ok(await page.$eval('#messages li.out.pending .tools', (d) => d.open), 'the tool timeline appears, open, while the run goes on');
  await shot(page, 'chat-tools-live');
  await page.waitForSelector('#messages li.out:not(.pending) strong', { timeout: T });
  const tl = await page.$$eval('#messages li.out .tools li.call', (ls) => ls.map((l) => ({
    name: l.querySelector('.tool-name').textContent, args: l.querySelector('.tool-args').textContent,
    result: l.querySelector('.tool-result').className + ' ' + l.querySelector('.tool-result').textContent })));
  ok(tl.length === 2 && tl[0].name === 'bash' && tl[0].args.includes('echo tool-output-42') && /\bok\b/.test(tl[0].result),
    'the bash call is in the timeline with its arguments and result', JSON.stringify(tl));
  ok(tl.length === 2 && tl[1].name === 'send_message' && /error/.test(tl[1].result),
    'the refused send_message shows as failed', JSON.stringify(tl));
  // The bash call printed HTML and ANSI escapes: its preview shows them as text, inert.
  const pv = await page.$$eval('#messages li.out .tools li.call', (ls) => ls.map((l) => {
    const p = l.querySelector('.tool-preview');
    return p ? { text: p.textContent, kids: p.children.length } : null;
  }));
  ok(pv[0] && pv[0].text.includes('tool-output-42') && pv[0].text.includes('<img src=x onerror=window.pwned=3><b>html-in-output</b>') &&
    pv[0].kids === 0, "the bash call's result preview: its output, HTML shown as text", JSON.stringify(pv));
  ok(pv[0] && pv[0].text.includes('red-ansi') && pv[0].text.includes('end') && !/[\x1b\x07]/.test(pv[0].text) && !pv[0].text.includes('[31m'),
    'ANSI escapes in the output are gone, their text kept', JSON.stringify(pv[0]));
  // 99 bytes, then 300 two-byte letters: byte 400 falls inside one, the cut backs off to it.
  ok(pv[0] && /éé…$/.test(pv[0].text) && !/[\ufffd?]/.test(pv[0].text) && new TextEncoder().encode(pv[0].text).length <= 400 + 3 && new TextEncoder().encode(pv[0].text).length > 350,
    'the preview is bounded (400 bytes, less the escapes dropped), cut between letters, marked as cut', JSON.stringify(pv[0]));
  ok(pv[1] && pv[1].text.includes('no group "nosuch"'), "the refused send_message's preview says why", JSON.stringify(pv[1]));
  const inert = await page.evaluate(() => ({ imgs: document.querySelectorAll('#messages img, #messages b').length, pwned: window.pwned }));
  ok(inert.imgs === 0 && inert.pwned === undefined, 'nothing of the tool output became markup or ran', JSON.stringify(inert));
  ok((await page.textContent('#messages li.out .body strong')) === 'tool-output-42', 'the reply is rendered as Markdown');
  ok(await page.$$eval('#messages li.out .stop', (b) => b.length) === 0, 'a finished reply has no Stop button');
  await shot(page, 'chat');
});

await step('stop a run from the Runs view', async () => {
  await page.fill('#text', 'wait for me');
  await page.keyboard.press('Enter');
  await page.click('#nav button[data-view="runs"]');
  await page.waitForSelector('#runs-now tr[data-message] button.stop', { timeout: T });
  ok(true, 'the run shows under Now with a Stop button');
  await shot(page, 'runs-now');
  // The run's processes: those whose command line names this test's data folder (its ask,
  // its proxy), the daemon's own aside. After the Stop none may be left.
  const left = () => execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' }).split('\n')
    .filter((l) => l.includes(WORK + '/data/') && !l.includes('clawbox-serve') && !l.includes(' serve '));
  ok(left().length > 0, 'while it runs, its processes are there (ask, proxy)', left().length);
  await page.click('#runs-now tr[data-message] button.stop');
  await page.waitForSelector('#runs-now .empty', { timeout: T });
  ok(true, 'after Stop nothing runs');
  await until(() => left().length === 0, 10000, 'the stopped run to be gone').then(
    () => ok(true, "the stopped run's processes are gone"), (e) => ok(false, "the stopped run's processes are gone", left().join(' | ')));
  await page.waitForSelector('#runs-history tr.failed', { timeout: T });
  const row = await page.$eval('#runs-history tr.failed', (tr) => [...tr.children].map((td) => td.textContent));
  ok(row[1] === 'main' && row[2].includes('wait for me') && row[4] !== '0', 'the history has it, failed, with its exit', JSON.stringify(row));
  const ok1 = await page.$eval('#runs-history tbody tr:nth-child(2)', (tr) => [...tr.children].map((td) => td.textContent));
  ok(ok1[4] === '0' && ok1[5] === '110 / 25' && /\d/.test(ok1[3]), 'the earlier run has exit 0, duration and tokens', JSON.stringify(ok1));
  await shot(page, 'runs');
  const fam = await page.$$eval('#runs-history tbody tr', (rs) => rs.filter((r) => r.children[1].textContent === 'family').map((r) => ({
    badge: r.querySelector('.badge-taint') ? r.querySelector('.badge-taint').title : null, cost: r.querySelector('.cost').textContent, model: r.querySelector('.model').textContent })));
  ok(fam.length === 1 && fam[0].badge && /mount|srv/.test(fam[0].badge), "family's run (an untrusted mount) has the tainted badge, its cause in the tooltip", JSON.stringify(fam));
  ok(fam.length === 1 && fam[0].cost === '$0.00060' && fam[0].model === 'claude-sonnet-4-5', 'and its model and cost', JSON.stringify(fam));
  const untainted = await page.$$eval('#runs-history tbody tr', (rs) => rs.filter((r) => r.children[1].textContent === 'main' && r.querySelector('.badge-taint')).length);
  ok(untainted === 0, "main's runs (the owner's messages) have none", untainted);
  // Runs rows as CONTRACTS.md 2 and 3 give them, with what this daemon's runs did not make (a
  // cause with markup in it, a null cost and model), answered by the page's own route.
  const real = await (await fetch(BASE + '/api/v1/runs?limit=1', { headers: { Authorization: 'Bearer ' + TOKEN } })).json();
  const base = real.runs[0];
  await page.route('**/api/v1/runs?limit=200*', (r) => r.fulfill({ contentType: 'application/json', body: JSON.stringify({ running: [], runs: [
    { ...base, message_id: 9001, model: 'claude-a', cost_usd: 0.0123, tainted: true, taint: ['egress: response from untrusted host <b>evil.example</b>', 'sender: telegram:7'] },
    { ...base, message_id: 9002, model: null, cost_usd: null, tainted: false, taint: [] }] }) }));
  await page.waitForSelector('#runs-history tr[data-message="9001"]', { timeout: T });
  const tr = await page.$$eval('#runs-history tbody tr', (rs) => rs.map((r) => ({ id: r.dataset.message, cls: r.className,
    model: r.querySelector('.model').textContent, cost: r.querySelector('.cost').textContent,
    badge: r.querySelector('.badge-taint') ? [r.querySelector('.badge-taint').textContent, r.querySelector('.badge-taint').title] : null, bs: r.querySelectorAll('b').length })));
  ok(tr[0].badge && tr[0].badge[0] === 'tainted' && tr[0].badge[1].includes('<b>evil.example</b>') && tr[0].badge[1].includes('sender: telegram:7') && tr[0].bs === 0 &&
    tr[0].cls.includes('tainted') && !tr[1].badge, '(contract sample) a tainted run has a badge with its causes, as text; an untainted one none', JSON.stringify(tr));
  ok(tr[0].model === 'claude-a' && tr[0].cost === '$0.012' && tr[1].model === '–' && tr[1].cost === 'unknown',
    '(contract sample) model and cost per run; a null cost is unknown', JSON.stringify(tr));
  await shot(page, 'runs-cost-taint');
  await page.unroute('**/api/v1/runs?limit=200*');
  await page.waitForSelector('#runs-history tr[data-message]:not([data-message="9001"])', { timeout: T });
  await page.waitForFunction(() => !document.querySelector('#runs-history tr[data-message="9001"]'), null, { timeout: T });
  await page.click('#runs-history tbody tr:nth-child(2) button');
  await page.waitForSelector('#panel:not([hidden]) .timeline li', { timeout: T });
  const panel = await page.textContent('#panel-body');
  ok(panel.includes('use a tool') && panel.includes('echo tool-output-42') && panel.includes('The tool said'),
    "the run's transcript: message, tool calls, reply", panel.slice(0, 300));
  const tpv = await page.$$eval('#panel-body .timeline .tool-preview', (ps) => ps.map((p) => [p.textContent, p.children.length]));
  ok(tpv.length === 2 && tpv[0][0].includes('<b>html-in-output</b>') && tpv[0][1] === 0, "and the results' previews, as text", JSON.stringify(tpv));
  const egress = await page.$$eval('#panel-body table.egress tr', (rs) => rs.map((r) => r.textContent));
  ok(egress.filter((e) => e.startsWith('deny')).length === 1 && egress.some((e) => e.startsWith('deny') && e.includes('blocked.example') && e.includes('not in the allowlist')) &&
    !egress.some((e) => e.includes('proxy stopped')),
    "and its egress (its own only): the refused request, with the proxy's reason", JSON.stringify(egress));
  await shot(page, 'run-transcript');
  await page.keyboard.press('Escape');
  ok(await page.isHidden('#panel'), 'Esc closes the panel');
  await page.click('#nav button[data-view="chat"]');
  await page.waitForSelector('#messages li.out.refused .refusal', { timeout: T });
  const refusal = await page.textContent('#messages li.out.refused .refusal');
  ok(refusal.includes('stopped by the user'), 'the stopped reply says so, prominently', refusal);
});

await step('filter the audit', async () => {
  await page.click('#nav button[data-view="audit"]');
  await page.waitForSelector('#audit-rows tr', { timeout: T });
  const all = await page.$$eval('#audit-rows tr', (rs) => rs.length);
  await page.selectOption('#audit-decision', 'deny');
  await page.waitForFunction(() => [...document.querySelectorAll('#audit-rows tr')].every((r) => r.children[3].textContent === 'deny') &&
    document.querySelectorAll('#audit-rows tr').length > 0, null, { timeout: T });
  const denied = await page.$$eval('#audit-rows tr', (rs) => rs.map((r) => [r.children[1].textContent, r.children[2].textContent, r.children[4].textContent]));
  ok(denied.some((d) => d[0] === 'main' && d[1] === 'send_message'), 'decision deny: the refused send_message, nothing else', JSON.stringify(denied));
  ok(denied.length < all, 'fewer rows than unfiltered', denied.length + ' of ' + all);
  await shot(page, 'audit');
  await page.selectOption('#audit-decision', '');
  await page.selectOption('#audit-kind', 'api');
  await page.waitForFunction(() => { const r = [...document.querySelectorAll('#audit-rows tr')]; return r.length > 0 && r.every((x) => x.children[2].textContent.startsWith('api:')); }, null, { timeout: T });
  const kinds = await page.$$eval('#audit-rows tr', (rs) => rs.map((r) => r.children[2].textContent));
  ok(kinds.includes('api:stop_run'), 'kind api: the stop is audited', JSON.stringify(kinds));
  await page.selectOption('#audit-group', 'family');
  await page.waitForFunction(() => [...document.querySelectorAll('#audit-rows tr')].every((x) => x.children[1].textContent === 'family'), null, { timeout: T });
  ok(true, 'group family: only its entries');
  await page.selectOption('#audit-kind', '');
  await page.selectOption('#audit-group', '');
  await page.fill('#audit-since', '2000-01-01T00:00');
  await page.fill('#audit-until', '2000-01-02T00:00');
  await page.dispatchEvent('#audit-until', 'change');
  await page.waitForFunction(() => document.querySelectorAll('#audit-rows tr').length === 0, null, { timeout: T });
  ok(true, 'a time range in the past: no entries');
  await page.fill('#audit-since', '');
  await page.fill('#audit-until', '');
  await page.dispatchEvent('#audit-until', 'change');
  await page.waitForFunction((all) => document.querySelectorAll('#audit-rows tr').length >= all, all, { timeout: T });
  // live: a new entry appears without reloading
  await api('POST', '/api/v1/tasks', { group: 'family', prompt: 'audit me', every_seconds: 86400 });
  await page.waitForFunction(() => [...document.querySelectorAll('#audit-rows tr')].some((x) => x.children[2].textContent === 'api:schedule_task'), null, { timeout: T });
  ok(true, 'live: a new entry appears by itself');
});

await step('create a task and see its next runs', async () => {
  await page.click('#nav button[data-view="tasks"]');
  await page.selectOption('#task-group', 'family');
  await page.selectOption('#task-kind', 'cron');
  await page.fill('#task-when', '0 9 * * *');
  await page.waitForSelector('#task-next li:nth-child(5)', { timeout: T });
  const next = await page.$$eval('#task-next li', (ls) => ls.map((l) => Number(l.dataset.unix)));
  const fmt = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  const hm = next.map((u) => fmt.format(new Date(u * 1000)));
  ok(next.length === 5 && hm.every((x) => x === '09:00'), "five next runs at 09:00 in the group's zone (Europe/Berlin)", JSON.stringify(hm));
  ok(next[0] > Date.now() / 1000 && next.every((u, i) => i === 0 || (u - next[i - 1] >= 23 * 3600 && u - next[i - 1] <= 25 * 3600)),
    'a day apart, the first in the future', JSON.stringify(next));
  await page.fill('#task-when', '61 * * * *');
  await page.waitForSelector('#task-preview.error', { timeout: T });
  ok(/minute/i.test(await page.textContent('#task-preview')), 'a bad expression says why', await page.textContent('#task-preview'));
  await page.fill('#task-when', '0 9 * * *');
  await page.waitForSelector('#task-next li:nth-child(5)', { timeout: T });
  await page.fill('#task-prompt', 'water the plants');
  await page.click('#task-form button');
  const row = await page.waitForSelector('#task-list tr[data-status="active"]:has-text("water the plants")', { timeout: T });
  ok(true, 'the task is created and listed as active');
  await shot(page, 'tasks');
  await (await row.$('button.pause')).click();
  await page.waitForSelector('#task-list tr[data-status="paused"]:has-text("water the plants")', { timeout: T });
  ok(true, 'pause');
  await page.click('#task-list tr[data-status="paused"]:has-text("water the plants") button.resume');
  await page.waitForSelector('#task-list tr[data-status="active"]:has-text("water the plants")', { timeout: T });
  ok(true, 'resume');
  await page.click('#task-list tr:has-text("water the plants") button:has-text("History")');
  await page.waitForSelector('#panel:not([hidden])', { timeout: T });
  ok((await page.textContent('#panel-body')).includes('not run yet'), 'its run history (none yet)');
  await page.keyboard.press('Escape');
  await page.click('#task-list tr:has-text("water the plants") button.cancel');
  await page.waitForFunction(() => !document.querySelector('#task-list').textContent.includes('water the plants'), null, { timeout: T });
  ok(true, 'cancel');
});

await step('the usage plot has the expected data points', async () => {
  await page.click('#nav button[data-view="usage"]');
  await page.waitForSelector('#usage-chart circle.point', { timeout: T });
  const pts = JSON.parse(await page.getAttribute('#usage-chart', 'data-points'));
  const day = new Date().toISOString().slice(0, 10);
  const get = (g) => pts.find((p) => p.group === g && p.day === day);
  ok(get('family') && get('family').tokens === 120, 'family today: 120 tokens (100 in, 20 out)', JSON.stringify(pts));
  ok(get('main') && get('main').tokens === 135, 'main today: 135 tokens over two turns, the stopped run spent none', JSON.stringify(pts));
  const fromApi = (await api('GET', '/api/v1/usage/daily?days=14')).usage;
  const sums = new Map(); // the API's rows are per group, day (and model): a point adds a group's day up
  for (const u of fromApi) sums.set(u.group + ' ' + u.day, (sums.get(u.group + ' ' + u.day) || 0) + u.input + u.output + u.cache_write + u.cache_read);
  ok(pts.length === sums.size && [...sums].every(([k, v]) => pts.some((p) => p.group + ' ' + p.day === k && p.tokens === v)),
    "every point is a group's day of /api/v1/usage/daily", JSON.stringify(fromApi));
  const circles = await page.$$eval('#usage-chart circle.point', (cs) => cs.map((c) => [c.dataset.group, c.dataset.day, Number(c.dataset.tokens)]));
  ok(circles.length === pts.length && circles.some((c) => c[0] === 'family' && c[2] === 120), 'each point is drawn', JSON.stringify(circles));
  const lines = await page.$$eval('#usage-chart line.budget', (ls) => ls.map((l) => [l.dataset.group, Number(l.dataset.limit), Number(l.getAttribute('y1'))]));
  const fam = await page.$eval('#usage-chart circle.point[data-group="family"]', (c) => Number(c.getAttribute('cy')));
  ok(lines.length === 1 && lines[0][0] === 'family' && lines[0][1] === 4000 && lines[0][2] < fam,
    "family's token budget (4,000 a day) is a dashed line, above its 120", JSON.stringify([lines, fam]));
  const rows = (await api('GET', '/api/v1/usage/daily?days=14')).usage;
  // claude-sonnet-4-5 at $3 in, $15 out per million: family's 100 in, 20 out is $0.0006.
  const cpts = JSON.parse(await page.getAttribute('#cost-chart', 'data-points'));
  const famCost = cpts.find((p) => p.group === 'family' && p.day === day);
  ok(rows.every((r) => typeof r.cost_usd === 'number') && famCost && Math.abs(famCost.cost_usd - 0.0006) < 1e-9,
    "the cost chart: family today $0.0006 at the configured prices", JSON.stringify(cpts));
  const cl0 = await page.$$eval('#cost-chart line.budget', (ls) => ls.map((l) => [l.dataset.group, Number(l.dataset.limit)]));
  ok(cl0.length === 1 && cl0[0][0] === 'main' && cl0[0][1] === 5, "main's cost budget ($5 a day) is a line on it", JSON.stringify(cl0));
  await shot(page, 'usage');
  // Rows and budgets as CONTRACTS.md 3 gives them, with what this daemon's run did not make (two
  // models in a day, one without a price), answered by the page's own route: the page adds a
  // group's models up, copes with a model without a price and draws the cost budget.
  const day2 = new Date().toISOString().slice(0, 10);
  await page.route('**/api/v1/usage/daily*', (r) => r.fulfill({ contentType: 'application/json', body: JSON.stringify({ days: 14, usage: [
    { day: day2, group: 'main', model: 'claude-a', runs: 2, input: 100, output: 50, cache_write: 0, cache_read: 0, cost_usd: 0.25 },
    { day: day2, group: 'main', model: 'local-b', runs: 1, input: 10, output: 5, cache_write: 0, cache_read: 0, cost_usd: null },
    { day: day2, group: 'family', model: 'claude-a', runs: 1, input: 100, output: 20, cache_write: 0, cache_read: 0, cost_usd: 0.5 }] }) }));
  await page.route('**/api/v1/budget', (r) => r.fulfill({ contentType: 'application/json', body: JSON.stringify({ groups: [
    { group: 'family', day_start: 0, resets: 0, budget: { tokens: { spent: 120, limit: 300 }, cost_usd: { spent: 0.5, limit: 1.5 } } },
    { group: 'main', day_start: 0, resets: 0, budget: { cost_usd: { spent: 0.25, limit: null } } }] }) }));
  await page.selectOption('#usage-days', '7');
  await page.waitForSelector('#cost-chart circle.point', { timeout: T });
  const cost = JSON.parse(await page.getAttribute('#cost-chart', 'data-points'));
  const cm = cost.find((p) => p.group === 'main'), cf = cost.find((p) => p.group === 'family');
  ok(cm && Math.abs(cm.cost_usd - 0.25) < 1e-9 && cm.cost_partial && cm.tokens === 165 && cf && cf.cost_usd === 0.5,
    "(contract sample) cost per group per day: main's two models added up, the unpriced one marking it partial", JSON.stringify(cost));
  const cl = await page.$$eval('#cost-chart line.budget', (ls) => ls.map((l) => [l.dataset.group, Number(l.dataset.limit)]));
  ok(cl.length === 1 && cl[0][0] === 'family' && cl[0][1] === 1.5, '(contract sample) the cost budget is a line; no limit, no line', JSON.stringify(cl));
  const pm = await page.$$eval('table.per-model tr[data-model]', (rs) => rs.map((r) => [r.dataset.model, r.querySelector('.cost').textContent]));
  ok(pm.some((m) => m[0] === 'claude-a' && m[1] === '$0.75') && pm.some((m) => m[0] === 'local-b' && m[1] === 'unknown'),
    '(contract sample) per model: the priced one costed, the other unknown', JSON.stringify(pm));
  await shot(page, 'usage-cost');
  await page.unroute('**/api/v1/usage/daily*');
  await page.unroute('**/api/v1/budget');
  await page.selectOption('#usage-days', '14');
});

await step('settings show the effective config, never the key', async () => {
  await page.click('#nav button[data-view="settings"]');
  await page.waitForSelector('#settings-body tr[data-group="family"]', { timeout: T });
  const text = await page.textContent('#settings-body');
  ok(text.includes('Europe/Berlin') && text.includes('127.0.0.1') && text.includes(TOKEN_FILE), 'groups, listen address and token file are shown', text.slice(0, 200));
  ok(!text.includes('sk-web-test-secret') && !(await page.content()).includes('sk-web-test-secret'), 'the model key is nowhere in the page');
  ok(/\/srv-web-test/.test(text) || text.includes('No mount allowlist'), 'the mount allowlist is shown', text.slice(-300));
  const pol = await page.$$eval('#settings-body tr[data-group]', (rs) => Object.fromEntries(rs.map((r) => [r.dataset.group, [r.querySelector('.approvers').textContent, r.querySelector('.asks').textContent]])));
  ok(pol.main[0] === 'cli, web' && pol.main[1].includes('send_message (other groups)') && pol.ops[0] === 'cli' && pol.ops[1].includes('send_message'),
    "each group's approvers and what it asks before", JSON.stringify(pol));
  const real = await fetch(BASE + '/api/v1/channels', { headers: { Authorization: 'Bearer ' + TOKEN } });
  if (real.status === 200) {
    const want = (await real.json()).channels;
    const rows = await page.$$eval('#settings-body table.channels tr[data-channel]', (rs) => rs.map((r) => [r.dataset.channel, r.dataset.state]));
    ok(rows.length === want.length && want.every((c) => rows.some((r) => r[0] === c.name && r[1] === c.state)),
      'channels: each of /api/v1/channels with its state', JSON.stringify(rows));
  } else {
    const rows = await page.$$eval('#settings-body table.channels tr[data-channel]', (rs) => rs.map((r) => r.textContent));
    ok(rows.some((r) => r.startsWith('web') && r.includes('connected')), 'channels (no /api/v1/channels on this daemon): the web page is connected', JSON.stringify(rows));
  }
  await shot(page, 'settings');
  // GET /api/v1/channels as CONTRACTS.md 4 gives it, answered by the page's own route until the
  // channel supervisor lands: states, last errors (as text), restarts, chats.
  await page.route('**/api/v1/channels', (r) => r.fulfill({ contentType: 'application/json', body: JSON.stringify({ channels: [
    { name: 'web', kind: 'web', state: 'connected', last_error: null, since: 1700000000, restarts: 0, chats: [] },
    { name: 'slack', kind: 'slack', state: 'error', last_error: '<img src=x onerror=window.pwned=4>token refused', since: 1700000100, restarts: 3, chats: ['C01', 'C02'] },
    { name: 'telegram', kind: 'telegram', state: 'restarting', last_error: 'connection reset', since: 1700000200, restarts: 1, chats: ['42'] }] }) }));
  await page.click('#nav button[data-view="chat"]');
  await page.click('#nav button[data-view="settings"]');
  await page.waitForSelector('#settings-body tr[data-channel="slack"]', { timeout: T });
  const ch = await page.$$eval('#settings-body table.channels tr[data-channel]', (rs) => rs.map((r) => ({ name: r.dataset.channel,
    state: r.querySelector('.state').className, text: r.textContent, imgs: r.querySelectorAll('img').length })));
  const slack = ch.find((c) => c.name === 'slack');
  ok(ch.length === 3 && slack && slack.state.includes('state-error') && slack.text.includes('<img src=x onerror=window.pwned=4>token refused') &&
    slack.imgs === 0 && slack.text.includes('C01, C02') && ch.find((c) => c.name === 'telegram').state.includes('state-restarting'),
    '(contract sample) channels: state, last error as text, restarts, chats', JSON.stringify(ch));
  await page.$eval('#settings-body table.channels', (t) => t.scrollIntoView());
  await shot(page, 'settings-channels');
  await page.unroute('**/api/v1/channels');
});

await step('approvals: approve and deny held requests from their cards; a page that is not an approver is refused', async () => {
  const messages = async (g) => (await api('GET', '/api/v1/groups/' + g + '/messages?after=0')).messages.map((m) => m.text).join('\n');
  await page.click('#nav button[data-view="chat"]');
  await page.selectOption('#group', 'main');
  await page.fill('#text', 'approve me');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#approvals-count:not([hidden])', { timeout: T });
  ok((await page.textContent('#approvals-count')) === '1', 'a held request shows as a count on the Approvals button');
  await page.click('#nav button[data-view="approvals"]');
  const card = await page.waitForSelector('#approvals-list article.approval[data-action="send_message"]', { timeout: T });
  const c = await card.evaluate((a) => ({ text: a.textContent, dest: a.querySelector('.destination').textContent, preview: a.querySelector('.preview').textContent,
    kids: a.querySelector('.preview').children.length, sha: a.querySelector('.f-sha256').textContent, group: a.querySelector('.f-group').textContent,
    who: a.querySelector('.f-who-may-answer').textContent, expiry: a.querySelector('.expiry').textContent, run: a.querySelector('.f-run').textContent,
    size: a.querySelector('.f-size').textContent, buttons: [...a.querySelectorAll('button')].map((b) => [b.textContent, b.disabled]) }));
  const held = (await api('GET', '/api/v1/approvals')).approvals[0];
  ok(c.dest === 'group:family' && c.preview.includes('approved-by-web <b>x</b>') && c.kids === 0 && c.preview === held.preview,
    'the card shows the action, destination and the arguments as the daemon rendered them (as text)', JSON.stringify(c));
  ok(/^[0-9a-f]{64}$/.test(c.sha) && c.sha === held.sha256 && c.size.includes(String(held.size)) && c.group === 'main' && c.run === held.run && c.run.length > 0,
    'with their size and sha256, the group and the run', JSON.stringify([c, held]));
  ok(c.who.includes('cli') && c.who.includes('web') && /expires in \d+ (min|s)/.test(c.expiry) && c.text.includes(held.why),
    'who may answer, when it expires, why it was held', JSON.stringify(c));
  ok(c.buttons.map((b) => b[0]).join('|') === 'Approve|Allow for this run|Deny' && c.buttons.every((b) => !b[1]), 'Approve, Allow for this run, Deny', JSON.stringify(c.buttons));
  ok(!(await messages('family')).includes('approved-by-web'), 'while held, nothing was sent');
  await shot(page, 'approvals');
  await page.click('#approvals-list article.approval[data-action="send_message"] button.approve');
  await until(async () => (await messages('family')).includes('approved-by-web'), T, 'the approved message in family');
  ok(true, 'Approve: the held send_message runs (the message is in family)');
  await until(async () => (await messages('main')).includes('approve done'), T, 'the run to finish');
  ok(true, 'and the run goes on with its result');
  const done = (await api('GET', '/api/v1/approvals?all=1')).approvals.find((a) => a.id === held.id);
  ok(done.status === 'approved' && done.answered_by === 'web', 'recorded as approved by "web" (the page)', JSON.stringify(done));
  await page.waitForSelector(`#approvals-done tr[data-id="${held.id}"][data-status="approved"]`, { timeout: T });
  ok(true, 'and listed under Recently answered');

  // Allow for this run: the same action to the same group passes for the rest of the run.
  await page.click('#nav button[data-view="chat"]');
  await page.fill('#text', 'run me');
  await page.keyboard.press('Enter');
  await page.click('#nav button[data-view="approvals"]');
  await page.waitForSelector('#approvals-list article.approval .preview:has-text("run-grant-1")', { timeout: T });
  await page.click('#approvals-list article.approval:has-text("run-grant-1") button.approve-run');
  await until(async () => (await messages('main')).includes('run done'), T, 'the run allowed for its rest to finish');
  const fam = await messages('family');
  const asked = (await api('GET', '/api/v1/approvals?all=1')).approvals.filter((a) => a.preview.includes('run-grant'));
  ok(fam.includes('run-grant-1') && fam.includes('run-grant-2') && asked.length === 1 && asked[0].scope === 'run' && asked[0].answered_by === 'web',
    'Allow for this run: the held message and the next one to the same group went, only the first was asked', JSON.stringify(asked));

  await page.click('#nav button[data-view="chat"]');
  await page.fill('#text', 'deny me');
  await page.keyboard.press('Enter');
  await page.click('#nav button[data-view="approvals"]');
  await page.waitForSelector('#approvals-list article.approval .preview:has-text("denied-by-web")', { timeout: T });
  await page.click('#approvals-list article.approval:has-text("denied-by-web") button.deny');
  await until(async () => (await messages('main')).includes('deny done'), T, 'the denied run to finish');
  ok(!(await messages('family')).includes('denied-by-web'), 'Deny: the held send_message never ran; the run was told "denied by web"');
  await page.waitForSelector('#approvals-list .empty', { timeout: T });
  ok(await page.isHidden('#approvals-count'), 'the queue is empty again, and the count gone');

  // ops lets only the CLI answer.
  await api('POST', '/api/v1/groups/ops/messages', { text: 'ops ask' });
  const opsCard = await page.waitForSelector('#approvals-list article.approval:has-text("ops-hello")', { timeout: T });
  const o = await opsCard.evaluate((a) => ({ who: a.querySelector('.f-who-may-answer').textContent, note: a.querySelector('.not-approver') ? a.querySelector('.not-approver').textContent : '',
    disabled: [...a.querySelectorAll('button')].every((b) => b.disabled), id: a.dataset.id }));
  ok(o.who === 'cli' && o.note.includes('may not answer') && o.disabled, 'where "web" is not an approver the card says so and its buttons are off', JSON.stringify(o));
  // The page's own request, sent anyway (as a script in the page could): the daemon refuses it.
  const r = await page.evaluate(async (id) => {
    const res = await fetch('/api/v1/approvals/' + id, { method: 'POST', headers: { Authorization: 'Bearer ' + localStorage.getItem('clawbox-token'), 'Content-Type': 'application/json' },
      body: JSON.stringify({ decision: 'approve' }) });
    return [res.status, await res.text()];
  }, o.id);
  ok(r[0] === 403 && r[1].includes('web is not an approver of ops'), "an answer from the page is refused: it is \"web\", and cannot pass as \"cli\"", JSON.stringify(r));
  ok(!(await messages('ops')).includes('ops-hello'), 'and nothing ran');
  const audit = (await api('GET', '/api/v1/audit/query?group=ops&limit=50')).entries.map((a) => a.reason);
  ok(audit.some((x) => x.includes('by web refused: not an approver of ops')), 'the refused answer is audited', JSON.stringify(audit));
  const cli = execFileSync('curl', ['-s', '-X', 'POST', '-H', 'Authorization: Bearer ' + TOKEN, '--data', '{"decision":"deny"}', BASE + '/api/v1/approvals/' + o.id], { encoding: 'utf8' });
  ok(cli.includes('"decision":"deny"'), 'the CLI (no browser headers) may answer it', cli);
  await until(async () => (await messages('ops')).includes('ops done'), T, 'the ops run to finish');
  const od = (await api('GET', '/api/v1/approvals?all=1')).approvals.find((a) => String(a.id) === o.id);
  ok(od.status === 'denied' && od.answered_by === 'cli', 'recorded as denied by "cli"', JSON.stringify(od));
});

await step("the header's Pause / Resume: a message sent while paused waits, and is answered once resumed", async () => {
  const btn = '#group-pause';
  const groupsPaused = async () => Object.fromEntries((await api('GET', '/api/v1/groups')).groups.map((g) => [g.id, g.paused]));
  await page.click('#nav button[data-view="chat"]');
  await page.selectOption('#group', 'main');
  await page.waitForSelector(btn + '[data-paused="false"]', { timeout: T });
  ok(await page.textContent(btn) === 'Pause' && await page.isHidden('#paused-note'), 'an active group shows Pause, and no paused note');
  await page.click(btn);
  await page.waitForSelector(btn + '[data-paused="true"]', { timeout: T });
  const st = await groupsPaused();
  ok(await page.textContent(btn) === 'Resume' && await page.getAttribute(btn, 'aria-pressed') === 'true' && await page.isVisible('#paused-note'),
    'clicking Pause: the button says Resume, pressed, and the chat says the group is paused');
  ok(st.main === true && st.family === false, 'the daemon has main paused (GET /api/v1/groups), and only main', JSON.stringify(st));
  await page.fill('#text', 'held while paused');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#messages li.in:has-text("held while paused")', { timeout: T });
  await page.waitForTimeout(3000); // a run would have started by now (others here start within a second)
  const msgs = (await api('GET', '/api/v1/groups/main/messages?after=0')).messages;
  const held = msgs.find((m) => m.direction === 'in' && m.text === 'held while paused');
  const model = fs.readFileSync(path.join(WORK, 'model.log'), 'utf8');
  ok(held && !msgs.some((m) => m.reply_to === held.id) && !model.includes('held while paused'),
    'a message sent while paused is stored and stays queued: no reply, the model never asked', JSON.stringify(msgs.slice(-2)));
  ok(await page.$$eval('#messages li.out', (l) => l.every((li) => !li.textContent.includes('answered after resume'))), 'and the page shows no answer');
  await shot(page, 'chat-paused');
  await page.selectOption('#group', 'family');
  await page.waitForSelector(btn + '[data-paused="false"]', { timeout: T });
  ok(await page.textContent(btn) === 'Pause', "another group's button shows its own state (family: Pause)");
  await page.selectOption('#group', 'main');
  await page.waitForSelector(btn + '[data-paused="true"]', { timeout: T });
  ok(await page.textContent(btn) === 'Resume', 'back on main: Resume');
  await page.click(btn);
  await page.waitForSelector(btn + '[data-paused="false"]', { timeout: T });
  ok((await groupsPaused()).main === false && await page.isHidden('#paused-note'), 'clicking Resume: the daemon has main active again, the note is gone');
  await page.waitForSelector('#messages li.out:has-text("answered after resume")', { timeout: T });
  const after = (await api('GET', '/api/v1/groups/main/messages?after=0')).messages;
  ok(after.some((m) => m.reply_to === held.id && m.text === 'answered after resume'), 'and the queued message is answered, in the page and in the store');
  await shot(page, 'chat-resumed');
});

await step('a 50-message history with the composer in view; the file downloads', async () => {
  await page.click('#nav button[data-view="chat"]');
  await page.selectOption('#group', 'long');
  await page.waitForFunction(() => document.querySelectorAll('#messages li').length >= 50, null, { timeout: T });
  const geo = await page.evaluate(() => {
    const r = (id) => document.getElementById(id).getBoundingClientRect();
    const list = document.getElementById('messages');
    const last = list.lastElementChild.getBoundingClientRect();
    return { send: r('send'), header: document.querySelector('header').getBoundingClientRect(), h: innerHeight, w: innerWidth,
      n: list.children.length, lastBottom: last.bottom, listBottom: list.getBoundingClientRect().bottom, scrolls: list.scrollHeight > list.clientHeight };
  });
  ok(geo.n >= 50, '50 messages or more', geo.n);
  ok(geo.send.top >= 0 && geo.send.bottom <= geo.h && geo.send.right <= geo.w, "the composer's box is inside the viewport", JSON.stringify(geo.send));
  ok(geo.header.top >= 0 && geo.header.bottom <= geo.h, 'the header too', JSON.stringify(geo.header));
  ok(geo.scrolls, 'the list scrolls', JSON.stringify(geo));
  await page.waitForFunction(() => { const l = document.getElementById('messages'); return l.lastElementChild.getBoundingClientRect().bottom <= l.getBoundingClientRect().bottom + 1; }, null, { timeout: 5000 })
    .then(() => ok(true, 'the newest message is in view'), (e) => ok(false, 'the newest message is in view', e.message));
  await shot(page, 'chat-50');
  const btn = await page.waitForSelector('#messages button.download', { timeout: T });
  const [dl] = await Promise.all([page.waitForEvent('download', { timeout: T }), btn.click()]);
  const file = path.join(WORK, 'downloaded');
  await dl.saveAs(file);
  ok(dl.suggestedFilename() === 'report.txt' && fs.readFileSync(file, 'utf8') === 'attach\n', 'the send_file attachment downloads', dl.suggestedFilename());
});

await step('a phone-sized viewport', async () => {
  const phone = await browser.newContext({ viewport: { width: 375, height: 667 }, isMobile: true, hasTouch: true });
  const p = await phone.newPage();
  await p.goto(BASE + '/#token=' + TOKEN + '&group=long');
  await p.waitForSelector('body[data-ready="1"]', { timeout: T });
  await p.waitForFunction(() => document.querySelectorAll('#messages li').length >= 50, null, { timeout: T });
  const g = await p.evaluate(() => ({ send: document.getElementById('send').getBoundingClientRect(), h: innerHeight, w: innerWidth,
    sw: document.documentElement.scrollWidth, nav: document.getElementById('nav').getBoundingClientRect() }));
  ok(g.send.top >= 0 && g.send.bottom <= g.h && g.send.right <= g.w + 1, 'phone: the composer is in view', JSON.stringify(g));
  ok(g.sw <= g.w + 1, 'phone: nothing overflows sideways', g.sw + ' > ' + g.w);
  ok(g.nav.top >= 0 && g.nav.bottom <= g.h, 'phone: the navigation is in view', JSON.stringify(g.nav));
  await shot(p, 'phone-chat');
  await p.click('#nav button[data-view="runs"]');
  await p.waitForSelector('#runs-history table', { timeout: T });
  const sw = await p.evaluate(() => document.documentElement.scrollWidth);
  ok(sw <= g.w + 1, 'phone: the runs view fits too', sw);
  await shot(p, 'phone-runs');
  await phone.close();
});

await step('log out, and the login form says where the token is', async () => {
  await page.click('#logout');
  await page.waitForSelector('#login:not([hidden])', { timeout: T });
  ok(await page.evaluate(() => localStorage.getItem('clawbox-token')) === null, 'logging out forgets the token');
  await page.waitForFunction((f) => document.getElementById('token-path').textContent === f, TOKEN_FILE, { timeout: T });
  ok(true, "the login form names the token file's path");
  await shot(page, 'login');
  await page.reload();
  await page.waitForSelector('#login:not([hidden])', { timeout: T });
  ok(await page.isHidden('#app'), 'after a reload it still asks');
  await page.fill('#token', 'not-the-token');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.getElementById('login-error').textContent.includes('refused'), null, { timeout: T });
  ok(true, 'a wrong token is refused, said plainly');
  await page.fill('#token', TOKEN);
  await page.keyboard.press('Enter');
  await page.waitForSelector('body[data-ready="1"] #app:not([hidden])', { timeout: T });
  ok(true, 'the right one logs in');
});

await step('the no-model banner', async () => {
  const c = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const p = await c.newPage();
  await p.goto(NOMODEL_URL + '/#token=' + NOMODEL_TOKEN);
  await p.waitForSelector('#no-model:not([hidden])', { timeout: T });
  const t = await p.textContent('#no-model');
  ok(t.includes('No model configured') && t.includes('model.base_url') && t.includes('ANTHROPIC_API_KEY'), 'a daemon without a model shows it plainly', t);
  await shot(p, 'no-model');
  await c.close();
});

if (process.env.EGRESS_ASK) {
  await step('an egress request held by the proxy is a card like any other, approved from it', async () => {
    await api('POST', '/api/v1/groups/net/messages', { text: 'fetch me' });
    await page.click('#nav button[data-view="approvals"]');
    const card = await page.waitForSelector('#approvals-list article.approval[data-action="egress"]', { timeout: T });
    const c = await card.evaluate((a) => ({ dest: a.querySelector('.destination').textContent, preview: a.querySelector('.preview').textContent,
      kids: a.querySelector('.preview').children.length, sha: a.querySelector('.f-sha256').textContent, group: a.querySelector('.f-group').textContent, why: a.querySelector('.why').textContent }));
    const held = (await api('GET', '/api/v1/approvals')).approvals.find((a) => a.action === 'egress');
    ok(c.dest === 'POST unlisted.example:' + process.env.EGRESS_PORT + '/in' && c.group === 'net' && c.sha === held.sha256 && c.why === held.why,
      'the card: method, host, port and path, the group, the digest, why', JSON.stringify([c, held]));
    ok(c.preview.includes('egress-body <i>x</i>') && c.kids === 0, "and the request's body, as text", JSON.stringify(c));
    await shot(page, 'approvals-egress');
    await card.$eval('button.approve', (b) => b.click());
    const msgs = async () => (await api('GET', '/api/v1/groups/net/messages?after=0')).messages.map((m) => m.text).join('\n');
    await until(async () => (await msgs()).includes('fetch done'), T, 'the approved request to go out and the run to finish');
    const done = (await api('GET', '/api/v1/approvals?all=1')).approvals.find((a) => a.id === held.id);
    ok(done.status === 'approved' && done.answered_by === 'web', 'Approve: the request went out (the model saw the server answer), approved by "web"', JSON.stringify(done));
  });
} else {
  console.log('# egress approvals are not in this build (unlisted_hosts "ask" is refused): the egress card is not tested');
}

ok(pageErrors.length === 0, 'no script errors in the page', pageErrors.join(' | '));
await browser.close();
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
