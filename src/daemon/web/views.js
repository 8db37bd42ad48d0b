// views.js: Runs, Audit, Usage, Tasks and Settings. Each has show() (called when it becomes
// the visible view) and hide(); live ones poll while visible. Every string from the daemon's
// records is set as text.
'use strict';

import { $, el, fmtTime, fmtDuration } from './dom.js';
import { api } from './api.js';
import { markdown, plain, argsOf, previewOf } from './render.js';
import { openPanel, placeholder } from './panel.js';

let ctx = { groups: [], status: () => {} };
export function setContext(c) { ctx = c; }

function table(headers, rows, cls) {
  return el('table', { class: cls || '' },
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))),
    el('tbody', {}, rows));
}

function poller(fn, ms) {
  let timer = null;
  return {
    start() { this.stop(); const tick = () => fn().catch((e) => ctx.status(e.message, true)).finally(() => { if (timer !== null) timer = setTimeout(tick, ms); }); timer = 0; tick(); },
    stop() { if (timer) clearTimeout(timer); timer = null; },
  };
}

function groupOptions(sel, withAll) {
  const keep = sel.value;
  sel.replaceChildren();
  if (withAll) sel.appendChild(el('option', { value: '' }, 'all groups'));
  for (const g of ctx.groups) sel.appendChild(el('option', { value: g.id }, g.id));
  if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
}

// ---- Runs ----
export async function showTranscript(messageId) {
  const j = await api('GET', '/api/v1/runs/' + messageId);
  const r = j.run;
  const parts = [
    el('p', { class: 'meta' }, plain(r.group) + ' · started ' + fmtTime(r.started_ms / 1000) +
      (r.ended_ms ? ' · ' + fmtDuration(r.ended_ms - r.started_ms) + ' · exit ' + r.exit_status : ' · running') +
      (r.model ? ' · ' + plain(r.model) : '') + (typeof r.cost_usd === 'number' ? ' · ' + usd(r.cost_usd) : ''), ' ', taintBadge(r)),
    el('h3', {}, 'Message'),
    el('div', { class: 'msg in' }, j.message ? plain(j.message.text) : '(not kept)'),
    el('h3', {}, 'Tool calls (' + j.tools.filter((t) => t.type === 'tool_call').length + ')'),
  ];
  const calls = new Map();
  const ol = el('ol', { class: 'timeline' });
  for (const t of j.tools) {
    if (t.type === 'tool_call') {
      const res = el('span', { class: 'tool-result pending' }, 'no result');
      const li = el('li', {}, el('span', { class: 'tool-name' }, plain(t.name)), ' ',
        el('code', { class: 'tool-args' }, plain(argsOf(t))), res,
        el('span', { class: 'meta' }, ' at ' + fmtDuration(t.t_ms)));
      calls.set(t.id, { res, t: t.t_ms, li });
      ol.appendChild(li);
    } else if (calls.has(t.id)) {
      const c = calls.get(t.id);
      c.res.className = 'tool-result ' + (t.is_error ? 'error' : 'ok');
      c.res.textContent = (t.is_error ? 'failed' : 'ok') + ', ' + t.bytes + ' bytes, ' + fmtDuration(t.t_ms - c.t);
      const pv = previewOf(t);
      if (pv) c.li.appendChild(pv);
    }
  }
  parts.push(ol.children.length ? ol : placeholder('none'));
  parts.push(el('h3', {}, 'Egress (' + j.egress.length + ')'));
  parts.push(j.egress.length ? table(['Decision', 'Request'], j.egress.map((a) =>
    el('tr', { class: 'decision-' + plain(a.decision) }, el('td', { class: 'decision' }, plain(a.decision)),
      el('td', { class: 'reason' }, plain(a.reason)))), 'egress') : placeholder('none'));
  parts.push(el('h3', {}, 'Reply'));
  for (const m of j.replies) parts.push(el('div', { class: 'msg out' }, markdown(m.text)));
  if (!j.replies.length) parts.push(placeholder('none yet'));
  openPanel('Run for message #' + messageId, ...parts);
}

// A run that read something untrusted is tainted (its later requests are checked harder):
// the causes, as the daemon recorded them, in the badge's tooltip.
function taintBadge(r) {
  if (!r.tainted) return null;
  const one = (c) => plain(typeof c === 'string' ? c : c && typeof c === 'object' ? (c.kind ? c.kind + ': ' : '') + (c.cause || '') : String(c));
  const causes = Array.isArray(r.taint) && r.taint.length ? r.taint.map(one).join('; ') : r.taint && !Array.isArray(r.taint) ? one(r.taint) : 'cause not recorded';
  return el('span', { class: 'badge-taint', title: causes }, 'tainted');
}

const runsPoll = poller(async () => {
  const g = $('runs-group').value;
  const j = await api('GET', '/api/v1/runs?limit=200' + (g ? '&group=' + encodeURIComponent(g) : ''));
  const now = Date.now();
  $('runs-now').replaceChildren(j.running.length ? table(['Group', 'Since', 'Last tool', ''],
    j.running.filter((r) => !g || r.group === g).map((r) => el('tr', { dataset: { message: r.message_id } },
      el('td', {}, plain(r.group)),
      el('td', {}, fmtDuration(now - r.started_ms)),
      el('td', {}, plain(r.last_tool || '–'), ' ', taintBadge(r)),
      el('td', {}, el('button', { type: 'button', class: 'stop', onclick: (e) => {
        e.target.disabled = true;
        api('POST', '/api/v1/runs/' + r.message_id + '/stop').catch((err) => ctx.status(err.message, true));
      } }, 'Stop'), ' ', el('button', { type: 'button', onclick: () => showTranscript(r.message_id) }, 'Transcript')))),
    'runs-now') : placeholder('Nothing is running.'));
  $('runs-history').replaceChildren(j.runs.length ? table(['Started', 'Group', 'Message', 'Duration', 'Exit', 'Tokens in/out', 'Model', 'Cost', ''],
    j.runs.map((r) => el('tr', { class: (r.exit_status ? 'failed' : '') + (r.tainted ? ' tainted' : ''), dataset: { message: r.message_id } },
      el('td', {}, fmtTime(r.started_ms / 1000)),
      el('td', {}, plain(r.group)),
      el('td', { class: 'prompt' }, plain(r.prompt || ''), ' ', taintBadge(r)),
      el('td', {}, fmtDuration(r.ended_ms - r.started_ms)),
      el('td', {}, String(r.exit_status)),
      el('td', {}, r.input + ' / ' + r.output),
      el('td', { class: 'model' }, r.model ? plain(r.model) : '–'),
      el('td', { class: 'cost' }, typeof r.cost_usd === 'number' ? usd(r.cost_usd) : 'unknown'),
      el('td', {}, el('button', { type: 'button', onclick: () => showTranscript(r.message_id).catch((e) => ctx.status(e.message, true)) }, 'Transcript')))),
    'runs-history') : placeholder('No runs yet.'));
}, 1500);

export const runs = {
  init() { $('runs-group').addEventListener('change', () => runsPoll.start()); },
  show() { groupOptions($('runs-group'), true); runsPoll.start(); },
  hide() { runsPoll.stop(); },
};

// ---- Audit ----
let auditNewest = 0;
function auditQuery(after) {
  const p = new URLSearchParams();
  for (const [k, id] of [['group', 'audit-group'], ['kind', 'audit-kind'], ['decision', 'audit-decision']])
    if ($(id).value) p.set(k, $(id).value);
  const since = $('audit-since').value, until = $('audit-until').value;
  if (since) p.set('since', String(Math.floor(new Date(since).getTime() / 1000)));
  if (until) p.set('until', String(Math.floor(new Date(until).getTime() / 1000)));
  if (after) p.set('after', String(after));
  p.set('limit', '500');
  return '/api/v1/audit/query?' + p.toString();
}
function auditRow(a) {
  return el('tr', { class: 'decision-' + plain(a.decision), dataset: { id: a.id } },
    el('td', {}, fmtTime(a.time)), el('td', {}, plain(a.group)), el('td', {}, plain(a.action)),
    el('td', { class: 'decision' }, plain(a.decision)), el('td', { class: 'reason' }, plain(a.reason)));
}
function learnKinds(entries) {
  for (const [id, of] of [['audit-kind', (a) => a.action.split(':')[0]], ['audit-decision', (a) => a.decision]]) {
    const sel = $(id);
    for (const a of entries) {
      const v = plain(of(a));
      if (v && ![...sel.options].some((o) => o.value === v)) sel.appendChild(el('option', { value: v }, v));
    }
  }
}
// Filters change faster than answers come: only the answer to the latest query is shown.
let auditSeq = 0;
async function auditReload() {
  const seq = ++auditSeq;
  const j = await api('GET', auditQuery(0));
  if (seq !== auditSeq) return;
  learnKinds(j.entries);
  auditNewest = j.entries.length ? j.entries[0].id : auditNewest;
  const body = el('tbody', { id: 'audit-rows' }, j.entries.map(auditRow));
  $('audit-table').replaceChildren(el('thead', {}, el('tr', {}, ['Time', 'Group', 'Action', 'Decision', 'Reason'].map((h) => el('th', {}, h)))), body);
  $('audit-count').textContent = j.entries.length + ' entries';
}
const auditPoll = poller(async () => {
  if (!$('audit-live').checked || !$('audit-rows')) return;
  const seq = auditSeq;
  const j = await api('GET', auditQuery(auditNewest));
  if (seq !== auditSeq || !j.entries.length) return; // a reload came meanwhile
  auditNewest = j.entries[0].id;
  learnKinds(j.entries);
  const body = $('audit-rows');
  body.prepend(...j.entries.map(auditRow));
  $('audit-count').textContent = body.children.length + ' entries';
}, 2000);
export const audit = {
  init() {
    $('audit-filters').addEventListener('change', () => auditReload().catch((e) => ctx.status(e.message, true)));
    $('audit-filters').addEventListener('submit', (e) => { e.preventDefault(); auditReload(); });
  },
  async show() { groupOptions($('audit-group'), true); auditNewest = 0; await auditReload(); auditPoll.start(); },
  hide() { auditPoll.stop(); },
};

// ---- Usage: tokens and estimated cost per group per day, drawn as SVG; each point carries
// its data. The daemon's rows are per group, day and model (a model's cost is null when no
// price is known for it): the charts add up a group's models, the table keeps them apart, and
// a day's cost with any unknown part is drawn as what is known and said to be partial. Each
// group's daily budget (GET /api/v1/budget) is a dashed line in its colour. ----
const SVGNS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  return e;
}
const COLORS = ['#3b6fd8', '#d8623b', '#3ba55c', '#a63bd8', '#d8b43b', '#3bc0d8', '#777'];
// Below a dollar two significant digits ($0.012), else cents.
const usd = (v) => v === null || v === undefined ? 'unknown' : '$' + (v < 1 && v > 0 ? v.toPrecision(2) : v.toFixed(2));
const tokensOf = (r) => r.input + r.output + r.cache_write + r.cache_read;

// One chart: series [{group, color, byDay: Map(day -> point)}], value(point) its height,
// limits [{group, color, limit}] dashed lines.
function drawChart(id, label, dayList, series, limits, value, fmt, title) {
  const all = series.flatMap((s) => [...s.byDay.values()].map(value));
  const max = Math.max(Number.EPSILON, ...all, ...limits.map((l) => l.limit));
  const W = 640, H = 260, L = 56, B = 28, T = 10, R = 10;
  const x = (i) => L + (dayList.length === 1 ? (W - L - R) / 2 : i * (W - L - R) / (dayList.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const chart = svg('svg', { id, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label });
  for (let k = 0; k <= 4; k++) {
    const v = max * k / 4;
    chart.appendChild(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
    chart.appendChild(svg('text', { x: L - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, fmt(v)));
  }
  dayList.forEach((d, i) => {
    if (dayList.length <= 8 || i % Math.ceil(dayList.length / 8) === 0)
      chart.appendChild(svg('text', { x: x(i), y: H - 8, 'text-anchor': i === dayList.length - 1 && i > 0 ? 'end' : 'middle', class: 'axis' }, d.slice(5)));
  });
  for (const l of limits) {
    const line = svg('line', { x1: L, x2: W - R, y1: y(l.limit), y2: y(l.limit), stroke: l.color, class: 'budget' },
      svg('title', {}, `${l.group}: budget ${fmt(l.limit)} a day`));
    line.dataset.group = l.group; line.dataset.limit = String(l.limit);
    chart.appendChild(line);
  }
  for (const s of series) {
    const coords = dayList.map((d, i) => [x(i), y(s.byDay.has(d) ? value(s.byDay.get(d)) : 0)]);
    chart.appendChild(svg('polyline', { points: coords.map((c) => c.join(',')).join(' '), fill: 'none', stroke: s.color, 'stroke-width': 2 }));
    dayList.forEach((d, i) => {
      const p = s.byDay.get(d);
      if (!p) return;
      const c = svg('circle', { cx: coords[i][0], cy: coords[i][1], r: 4, fill: s.color, class: 'point' }, svg('title', {}, title(s.group, d, p)));
      c.dataset.group = s.group; c.dataset.day = d; c.dataset.value = String(value(p));
      if (id === 'usage-chart') c.dataset.tokens = String(p.tokens);
      chart.appendChild(c);
    });
  }
  return chart;
}

function drawUsage(rows, days, budgets) {
  const dayList = [];
  const today = new Date();
  for (let i = days - 1; i >= 0; i--) {
    const d = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
    dayList.push(d.toISOString().slice(0, 10));
  }
  const groups = [...new Set(rows.map((r) => r.group))].sort();
  const sums = new Map(); // "group day" -> point, the group's models added up
  for (const r of rows) {
    const k = r.group + ' ' + r.day;
    const p = sums.get(k) || { group: r.group, day: r.day, tokens: 0, input: 0, output: 0, runs: 0, cost_usd: null, cost_partial: false };
    p.tokens += tokensOf(r); p.input += r.input; p.output += r.output; p.runs += r.runs;
    if (typeof r.cost_usd === 'number') p.cost_usd = (p.cost_usd || 0) + r.cost_usd;
    else if ('cost_usd' in r) p.cost_partial = true;
    sums.set(k, p);
  }
  const points = [...sums.values()];
  const color = (g) => COLORS[groups.indexOf(g) % COLORS.length];
  const series = (keep) => groups.map((g) => ({ group: g, color: color(g),
    byDay: new Map(points.filter((p) => p.group === g && keep(p)).map((p) => [p.day, p])) }));
  const limitsOf = (item) => budgets.filter((b) => groups.includes(b.group) && b.budget && b.budget[item] &&
    typeof b.budget[item].limit === 'number').map((b) => ({ group: b.group, color: color(b.group), limit: b.budget[item].limit }));
  const tokens = drawChart('usage-chart', 'tokens per group per day', dayList, series(() => true), limitsOf('tokens'),
    (p) => p.tokens, (v) => String(Math.round(v)),
    (g, d, p) => `${g} ${d}: ${p.tokens} tokens (${p.input} in, ${p.output} out), ${p.runs} runs`);
  tokens.dataset.points = JSON.stringify(points);
  const out = [el('h3', {}, 'Tokens'), tokens];
  const costed = points.filter((p) => p.cost_usd !== null);
  const costLimits = limitsOf('cost_usd');
  if (costed.length || costLimits.length) {
    const cost = drawChart('cost-chart', 'estimated cost per group per day', dayList, series((p) => p.cost_usd !== null), costLimits,
      (p) => p.cost_usd, (v) => '$' + (v >= 10 ? v.toFixed(0) : v.toFixed(2)),
      (g, d, p) => `${g} ${d}: ${usd(p.cost_usd)}${p.cost_partial ? ' (partial: a model without a price)' : ''}`);
    cost.dataset.points = JSON.stringify(costed);
    out.push(el('h3', {}, 'Estimated cost (USD)'), cost);
  } else {
    out.push(el('h3', {}, 'Estimated cost (USD)'), placeholder('Cost unknown: no prices are configured for the models used (top-level "prices" in the configuration).'));
  }
  out.push(el('ul', { class: 'legend' }, groups.map((g) =>
    el('li', {}, el('span', { class: 'swatch', dataset: { color: groups.indexOf(g) % COLORS.length } }), plain(g)))));
  // Per model, over the period.
  const models = new Map();
  for (const r of rows) {
    const m = r.model === undefined ? '(not recorded)' : r.model === null ? '(unknown)' : plain(r.model);
    const t = models.get(m) || { tokens: 0, runs: 0, cost: null, partial: false };
    t.tokens += tokensOf(r); t.runs += r.runs;
    if (typeof r.cost_usd === 'number') t.cost = (t.cost || 0) + r.cost_usd; else t.partial = true;
    models.set(m, t);
  }
  out.push(el('h3', {}, 'Per model'), table(['Model', 'Runs', 'Tokens', 'Estimated cost'], [...models].map(([m, t]) =>
    el('tr', { dataset: { model: m } }, el('td', {}, m), el('td', {}, String(t.runs)), el('td', {}, String(t.tokens)),
      el('td', { class: 'cost' }, t.cost === null ? 'unknown' : usd(t.cost) + (t.partial ? ' (partial)' : '')))), 'per-model'));
  return out;
}
export const usage = {
  init() { $('usage-days').addEventListener('change', () => this.show()); },
  async show() {
    const days = Number($('usage-days').value);
    const [j, b] = await Promise.all([api('GET', '/api/v1/usage/daily?days=' + days),
      api('GET', '/api/v1/budget').catch(() => ({ groups: [] }))]);
    $('usage-plot').replaceChildren(...(j.usage.length ? drawUsage(j.usage, days, b.groups || []) : [placeholder('No usage in this period.')]));
    $('usage-table').replaceChildren(table(['Day', 'Group', 'Model', 'Runs', 'Input', 'Output', 'Cache write', 'Cache read', 'Estimated cost'],
      j.usage.slice().reverse().map((r) => el('tr', {}, [r.day, plain(r.group), r.model ? plain(r.model) : '–', r.runs, r.input, r.output,
        r.cache_write, r.cache_read, usd(r.cost_usd)].map((v) => el('td', {}, String(v)))))));
  },
  hide() {},
};

// ---- Tasks ----
function scheduleBody() {
  const kind = $('task-kind').value, v = $('task-when').value.trim();
  const b = { group: $('task-group').value };
  if (kind === 'cron') b.cron = v;
  else if (kind === 'every') b.every_seconds = Number(v);
  else b.at = v;
  return b;
}
function zoned(unix, tz) {
  try {
    return new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'long', timeZone: tz }).format(new Date(unix * 1000));
  } catch (e) { return new Date(unix * 1000).toISOString(); }
}
let previewSeq = 0;
async function preview() {
  const seq = ++previewSeq;
  const out = $('task-preview');
  if (!$('task-when').value.trim()) { out.replaceChildren(); return; }
  try {
    const j = await api('POST', '/api/v1/tasks/preview', scheduleBody());
    if (seq !== previewSeq) return;
    out.replaceChildren(el('p', {}, 'Next runs (' + plain(j.timezone) + '): ' + plain(j.schedule)),
      el('ol', { id: 'task-next' }, j.next.map((n) => el('li', { dataset: { unix: n.unix, utc: n.utc } }, zoned(n.unix, j.timezone)))));
    out.classList.remove('error');
  } catch (e) {
    if (seq !== previewSeq) return;
    out.replaceChildren(el('p', { role: 'alert' }, e.message));
    out.classList.add('error');
  }
}
async function taskHistory(t) {
  const j = await api('GET', '/api/v1/tasks/' + t.id + '/runs');
  openPanel('Task #' + t.id + ' runs', el('p', {}, plain(t.schedule) + ': ' + plain(t.prompt)),
    j.runs.length ? table(['Started', 'Duration', 'Status', ''], j.runs.map((r) => el('tr', {},
      el('td', {}, fmtTime(r.started)), el('td', {}, r.duration_s !== undefined ? r.duration_s + ' s' : '–'),
      el('td', {}, plain(r.status)),
      el('td', {}, r.message_id ? el('button', { type: 'button', onclick: () => showTranscript(r.message_id).catch((e) => ctx.status(e.message, true)) }, 'Transcript') : '')))) : placeholder('It has not run yet.'));
}
async function loadTasks() {
  const j = await api('GET', '/api/v1/tasks');
  const act = (t, verb, label) => el('button', { type: 'button', class: verb, onclick: async () => {
    try {
      if (verb === 'cancel') await api('DELETE', '/api/v1/tasks/' + t.id);
      else await api('POST', '/api/v1/tasks/' + t.id + '/' + verb);
    } catch (e) { ctx.status(e.message, true); }
    loadTasks();
  } }, label);
  $('task-list').replaceChildren(j.tasks.length ? table(['#', 'Group', 'Schedule', 'Next run', 'Status', 'Prompt', ''],
    j.tasks.map((t) => el('tr', { dataset: { id: t.id, status: t.status } },
      el('td', {}, String(t.id)), el('td', {}, plain(t.group)), el('td', {}, plain(t.schedule)),
      el('td', {}, t.next_run ? new Date(t.next_run).toLocaleString() : '–'), el('td', { class: 'status' }, plain(t.status)),
      el('td', { class: 'prompt' }, plain(t.prompt)),
      el('td', { class: 'actions' }, t.status === 'active' ? act(t, 'pause', 'Pause') : null,
        t.status === 'paused' ? act(t, 'resume', 'Resume') : null,
        t.status === 'active' || t.status === 'paused' ? act(t, 'cancel', 'Cancel') : null,
        el('button', { type: 'button', onclick: () => taskHistory(t).catch((e) => ctx.status(e.message, true)) }, 'History'))))) : placeholder('No tasks.'));
}
const HINTS = { cron: 'e.g. 0 9 * * mon-fri', every: 'seconds, e.g. 3600', at: 'e.g. 2030-01-01T09:00:00Z' };
export const tasks = {
  init() {
    let t = null;
    const later = () => { clearTimeout(t); t = setTimeout(preview, 250); };
    $('task-when').addEventListener('input', later);
    $('task-kind').addEventListener('change', () => { $('task-when').placeholder = HINTS[$('task-kind').value]; later(); });
    $('task-group').addEventListener('change', later);
    $('task-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const b = scheduleBody();
      b.prompt = $('task-prompt').value.trim();
      try {
        await api('POST', '/api/v1/tasks', b);
        $('task-prompt').value = '';
        $('task-form-error').hidden = true;
        await loadTasks();
      } catch (err) {
        $('task-form-error').textContent = 'Not created: ' + err.message;
        $('task-form-error').hidden = false;
      }
    });
  },
  async show() { groupOptions($('task-group'), false); $('task-when').placeholder = HINTS[$('task-kind').value]; await loadTasks(); },
  hide() {},
};

// ---- Groups and settings ----
// Channels and their state from GET /api/v1/channels (each channel a supervised process: its
// state, last error, since when, restarts, chats); a daemon without that endpoint (404) has
// only the settings' list of which channels are on.
function channelsTable(ch, s) {
  // The settings' list has the same shape once the daemon supervises channels.
  const list = ch && Array.isArray(ch.channels) ? ch.channels : s.channels.every((c) => typeof c.state === 'string') ? s.channels : null;
  if (list) {
    return table(['Channel', 'Kind', 'State', 'Since', 'Restarts', 'Last error', 'Chats'], list.map((c) =>
      el('tr', { dataset: { channel: plain(c.name), state: plain(c.state) } },
        el('td', {}, plain(c.name)), el('td', {}, plain(c.kind)),
        el('td', { class: 'state state-' + plain(c.state).replace(/[^a-z]/g, '') }, plain(c.state)),
        el('td', {}, c.since ? fmtTime(c.since) : '–'), el('td', {}, String(c.restarts || 0)),
        el('td', { class: 'reason' }, c.last_error ? plain(c.last_error) : '–'),
        el('td', {}, Array.isArray(c.chats) && c.chats.length ? c.chats.map(plain).join(', ') : '–'))), 'channels');
  }
  if (ch && ch.error) return el('p', { role: 'alert' }, 'Channels: ' + plain(ch.error));
  return table(['Channel', 'State', 'Details'], s.channels.map((c) => el('tr', { dataset: { channel: plain(c.name) } },
    el('td', {}, c.name),
    el('td', {}, c.name === 'web' ? 'connected' : (c.on ? (c.token_set ? 'on' : 'on, but its token variable is not set') : 'off')),
    el('td', {}, c.name === 'telegram' ? (c.chats + ' configured chats' + (c.seen ? ', ' + c.seen.length + ' seen' : '')) : 'this page'))), 'channels');
}

export const settings = {
  init() {},
  async show() {
    const [s, st, ch] = await Promise.all([api('GET', '/api/v1/settings'), api('GET', '/api/v1/status'),
      api('GET', '/api/v1/channels').catch((e) => (e.status === 404 ? null : { error: e.message }))]);
    // Each group's policy: who may answer its approvals, and what it holds for them.
    const pol = new Map(await Promise.all(s.groups.map((g) => api('GET', '/api/v1/groups/' + encodeURIComponent(g.id) + '/policy')
      .then((j) => [g.id, j.policy], () => [g.id, null]))));
    const asks = (p) => Object.entries(p.host_actions || {}).flatMap(([a, v]) =>
      [v.self === 'ask' ? a : null, v.other_groups === 'ask' ? a + ' (other groups)' : null]).filter(Boolean);
    const kv = (pairs) => el('dl', {}, pairs.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))]));
    const m = s.model;
    $('settings-body').replaceChildren(
      el('h3', {}, 'Daemon'),
      kv([['version', st.version], ['listening on', s.listen + ':' + s.port], ['data folder', s.data_dir],
        ['configuration', st.config_file], ['API token file', st.token_file], ['runs at once', s.max_concurrent],
        ['microVM', s.vm.on ? 'on (' + s.vm.accel + ')' : 'off']]),
      el('h3', {}, 'Model'),
      kv([['configured', m.configured ? 'yes' : 'NO'], ['provider', m.provider], ['base URL', m.base_url || '(the provider\'s)'],
        ['model', m.model || '(the agent\'s default)'], ['key variable', m.api_key_env + (m.api_key_env_set ? ' (set)' : ' (not set)')],
        ['key file', m.api_key_file || '–'], ['max tokens', m.max_tokens || '(default)']]),
      el('h3', {}, 'Groups'),
      table(['Group', 'Main', 'Trigger', 'Approvers', 'Asks before', 'Egress allowlist', 'Memory', 'Time zone', 'Mounts'], s.groups.map((g) => el('tr', { dataset: { group: g.id } },
        el('td', {}, plain(g.id)), el('td', {}, g.main ? 'yes' : ''), el('td', {}, plain(g.trigger)),
        el('td', { class: 'approvers' }, pol.get(g.id) ? (pol.get(g.id).approvers.map(plain).join(', ') || 'nobody') : '–'),
        el('td', { class: 'asks' }, pol.get(g.id) ? (asks(pol.get(g.id)).map(plain).join(', ') || 'nothing') : '–'),
        el('td', {}, g.allow.length ? g.allow.map(plain).join(', ') : 'nothing'),
        el('td', {}, g.memory_bytes ? Math.round(g.memory_bytes / 1048576) + ' MiB' : 'default'),
        el('td', {}, plain(g.timezone)),
        el('td', {}, g.mounts.length ? el('ul', {}, g.mounts.map((mt) => el('li', { class: mt.allowed ? 'allowed' : 'refused' },
          plain(mt.host) + ' → ' + plain(mt.path) + (mt.rw ? ' (rw)' : ' (ro)') + (mt.allowed ? '' : ': refused, ' + plain(mt.why))))) : 'none')))),
      el('h3', {}, 'Mount allowlist'),
      s.mount_allowlist.present ? el('div', {},
        el('ul', { id: 'mount-roots' }, s.mount_allowlist.roots.map((r) => el('li', {}, plain(r.path) + (r.writable ? ' (writable)' : ' (read-only)')))),
        el('p', {}, 'Blocked names: ' + (s.mount_allowlist.blocked.map(plain).join(', ') || 'the built-in list only'))) :
        placeholder('No mount allowlist file: no group gets extra mounts.'),
      el('h3', {}, 'Channels'),
      channelsTable(ch, s),
    );
  },
  hide() {},
};
