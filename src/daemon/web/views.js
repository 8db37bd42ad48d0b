// views.js: Runs, Audit, Usage, Tasks and Settings. Each has show() (called when it becomes
// the visible view) and hide(); live ones poll while visible. Every string from the daemon's
// records is set as text.
'use strict';

import { $, el, fmtTime, fmtDuration } from './dom.js';
import { api } from './api.js';
import { markdown, plain, argsOf } from './render.js';
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
      (r.ended_ms ? ' · ' + fmtDuration(r.ended_ms - r.started_ms) + ' · exit ' + r.exit_status : ' · running')),
    el('h3', {}, 'Message'),
    el('div', { class: 'msg in' }, j.message ? plain(j.message.text) : '(not kept)'),
    el('h3', {}, 'Tool calls (' + j.tools.filter((t) => t.type === 'tool_call').length + ')'),
  ];
  const calls = new Map();
  const ol = el('ol', { class: 'timeline' });
  for (const t of j.tools) {
    if (t.type === 'tool_call') {
      const res = el('span', { class: 'tool-result pending' }, 'no result');
      calls.set(t.id, { res, t: t.t_ms });
      ol.appendChild(el('li', {}, el('span', { class: 'tool-name' }, plain(t.name)), ' ',
        el('code', { class: 'tool-args' }, plain(argsOf(t))), res,
        el('span', { class: 'meta' }, ' at ' + fmtDuration(t.t_ms))));
    } else if (calls.has(t.id)) {
      const c = calls.get(t.id);
      c.res.className = 'tool-result ' + (t.is_error ? 'error' : 'ok');
      c.res.textContent = (t.is_error ? 'failed' : 'ok') + ', ' + t.bytes + ' bytes, ' + fmtDuration(t.t_ms - c.t);
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

const runsPoll = poller(async () => {
  const g = $('runs-group').value;
  const j = await api('GET', '/api/v1/runs?limit=200' + (g ? '&group=' + encodeURIComponent(g) : ''));
  const now = Date.now();
  $('runs-now').replaceChildren(j.running.length ? table(['Group', 'Since', 'Last tool', ''],
    j.running.filter((r) => !g || r.group === g).map((r) => el('tr', { dataset: { message: r.message_id } },
      el('td', {}, plain(r.group)),
      el('td', {}, fmtDuration(now - r.started_ms)),
      el('td', {}, plain(r.last_tool || '–')),
      el('td', {}, el('button', { type: 'button', class: 'stop', onclick: (e) => {
        e.target.disabled = true;
        api('POST', '/api/v1/runs/' + r.message_id + '/stop').catch((err) => ctx.status(err.message, true));
      } }, 'Stop'), ' ', el('button', { type: 'button', onclick: () => showTranscript(r.message_id) }, 'Transcript')))),
    'runs-now') : placeholder('Nothing is running.'));
  $('runs-history').replaceChildren(j.runs.length ? table(['Started', 'Group', 'Message', 'Duration', 'Exit', 'Tokens in/out', ''],
    j.runs.map((r) => el('tr', { class: r.exit_status ? 'failed' : '', dataset: { message: r.message_id } },
      el('td', {}, fmtTime(r.started_ms / 1000)),
      el('td', {}, plain(r.group)),
      el('td', { class: 'prompt' }, plain(r.prompt || '')),
      el('td', {}, fmtDuration(r.ended_ms - r.started_ms)),
      el('td', {}, String(r.exit_status)),
      el('td', {}, r.input + ' / ' + r.output),
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

// ---- Usage: tokens per group per day, drawn as SVG; each point carries its data ----
const SVGNS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  return e;
}
const COLORS = ['#3b6fd8', '#d8623b', '#3ba55c', '#a63bd8', '#d8b43b', '#3bc0d8', '#777'];
function drawUsage(rows, days) {
  const dayList = [];
  const today = new Date();
  for (let i = days - 1; i >= 0; i--) {
    const d = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
    dayList.push(d.toISOString().slice(0, 10));
  }
  const groups = [...new Set(rows.map((r) => r.group))].sort();
  const value = (r) => r.input + r.output + r.cache_write + r.cache_read;
  const points = rows.map((r) => ({ group: r.group, day: r.day, tokens: value(r), input: r.input, output: r.output, runs: r.runs }));
  const max = Math.max(1, ...points.map((p) => p.tokens));
  const W = 640, H = 260, L = 56, B = 28, T = 10, R = 10;
  const x = (i) => L + (dayList.length === 1 ? (W - L - R) / 2 : i * (W - L - R) / (dayList.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const chart = svg('svg', { id: 'usage-chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'tokens per group per day' });
  chart.dataset.points = JSON.stringify(points);
  for (let k = 0; k <= 4; k++) {
    const v = Math.round(max * k / 4);
    chart.appendChild(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
    chart.appendChild(svg('text', { x: L - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, String(v)));
  }
  dayList.forEach((d, i) => {
    if (dayList.length <= 8 || i % Math.ceil(dayList.length / 8) === 0)
      chart.appendChild(svg('text', { x: x(i), y: H - 8, 'text-anchor': 'middle', class: 'axis' }, d.slice(5)));
  });
  groups.forEach((g, gi) => {
    const color = COLORS[gi % COLORS.length];
    const byDay = new Map(points.filter((p) => p.group === g).map((p) => [p.day, p]));
    const coords = dayList.map((d, i) => [x(i), y(byDay.has(d) ? byDay.get(d).tokens : 0)]);
    chart.appendChild(svg('polyline', { points: coords.map((c) => c.join(',')).join(' '), fill: 'none', stroke: color, 'stroke-width': 2 }));
    dayList.forEach((d, i) => {
      const p = byDay.get(d);
      if (!p) return;
      const c = svg('circle', { cx: coords[i][0], cy: coords[i][1], r: 4, fill: color, class: 'point' },
        svg('title', {}, `${g} ${d}: ${p.tokens} tokens (${p.input} in, ${p.output} out), ${p.runs} runs`));
      c.dataset.group = g; c.dataset.day = d; c.dataset.tokens = String(p.tokens);
      chart.appendChild(c);
    });
  });
  const legend = el('ul', { class: 'legend' }, groups.map((g, gi) =>
    el('li', {}, el('span', { class: 'swatch', style: null, dataset: { color: gi % COLORS.length } }), plain(g))));
  return [chart, legend];
}
export const usage = {
  init() { $('usage-days').addEventListener('change', () => this.show()); },
  async show() {
    const days = Number($('usage-days').value);
    const j = await api('GET', '/api/v1/usage/daily?days=' + days);
    $('usage-plot').replaceChildren(...(j.usage.length ? drawUsage(j.usage, days) : [placeholder('No usage in this period.')]));
    $('usage-table').replaceChildren(table(['Day', 'Group', 'Runs', 'Input', 'Output', 'Cache write', 'Cache read'],
      j.usage.slice().reverse().map((r) => el('tr', {}, [r.day, plain(r.group), r.runs, r.input, r.output, r.cache_write, r.cache_read].map((v) => el('td', {}, String(v)))))));
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
export const settings = {
  init() {},
  async show() {
    const [s, st] = await Promise.all([api('GET', '/api/v1/settings'), api('GET', '/api/v1/status')]);
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
      table(['Group', 'Main', 'Trigger', 'Egress allowlist', 'Memory', 'Time zone', 'Mounts'], s.groups.map((g) => el('tr', { dataset: { group: g.id } },
        el('td', {}, plain(g.id)), el('td', {}, g.main ? 'yes' : ''), el('td', {}, plain(g.trigger)),
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
      table(['Channel', 'State', 'Details'], s.channels.map((c) => el('tr', {},
        el('td', {}, c.name),
        el('td', {}, plain(c.state) + (c.last_error ? ': ' + plain(c.last_error) : '') + (c.restarts ? ' (' + c.restarts + ' restarts)' : '')),
        el('td', {}, c.kind === 'web' ? 'this page' : (plain(c.kind) + ', ' + c.chats.length + ' configured chats' + (c.seen ? ', ' + c.seen.length + ' seen' : '')))))),
    );
  },
  hide() {},
};
