// chat.js: the Conversations view. The group's history, then its live events: "message"
// (stored messages in and out), "delta" (the running reply's text) and "tool" (the running
// reply's tool calls and results, as a collapsible timeline). Replies are Markdown through
// render.js; everything else is text (a tool result's preview too). Enter sends, Shift+Enter is a newline.
'use strict';

import { $, el, fmtDuration, fmtBytes } from './dom.js';
import { api, sse, download } from './api.js';
import { markdown, plain, argsOf, previewOf } from './render.js';

const FILE_RE = /^\[file: (.{1,100}), (\d+) bytes\]$/;
const REFUSAL_RE = /\[clawbox: ([^\]]*)\]\s*$/;

let group = '';
let lastId = 0;
let stream = null;
const replies = new Map(); // reply_to -> {li, body, text, tools, toolsList}
let onStatus = () => {};

// The list follows new content while the reader is at its bottom (as of their last scroll,
// not after the content grew), and stays put while they read further up.
let stick = true;
function nearBottom(list) {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
}
function scrollDown(list, force) {
  if (force) stick = true;
  if (stick) list.scrollTop = list.scrollHeight;
}

function toolsBox(entry) {
  if (entry.tools) return entry.tools;
  entry.toolsList = el('ol', { class: 'timeline' });
  entry.toolsCount = el('span', { class: 'count' }, 'tool calls');
  entry.tools = el('details', { class: 'tools' }, el('summary', {}, entry.toolsCount), entry.toolsList);
  entry.li.insertBefore(entry.tools, entry.body);
  return entry.tools;
}

function addTool(entry, t) {
  toolsBox(entry);
  const list = entry.toolsList;
  if (t.type === 'tool_call') {
    list.appendChild(el('li', { class: 'call', dataset: { toolId: t.id, t: t.t_ms } },
      el('span', { class: 'tool-name' }, plain(t.name)), ' ',
      el('code', { class: 'tool-args' }, plain(argsOf(t))),
      el('span', { class: 'tool-result pending' }, 'running…')));
  } else {
    const li = [...list.children].find((c) => c.dataset.toolId === t.id && !c.dataset.done);
    if (li) {
      li.dataset.done = '1';
      const res = li.querySelector('.tool-result');
      res.className = 'tool-result ' + (t.is_error ? 'error' : 'ok');
      res.textContent = (t.is_error ? 'failed' : 'ok') + ', ' + fmtBytes(t.bytes || 0) + ', ' +
        fmtDuration(t.t_ms - Number(li.dataset.t));
      const pv = previewOf(t);
      if (pv) li.appendChild(pv);
    }
  }
  const n = list.querySelectorAll('li.call').length;
  entry.toolsCount.textContent = n + (n === 1 ? ' tool call' : ' tool calls');
}

function replyEntry(replyTo) {
  let e = replies.get(replyTo);
  if (!e) {
    const body = el('div', { class: 'body' });
    const stop = el('button', { class: 'stop', type: 'button', title: 'Stop this run' }, 'Stop');
    stop.addEventListener('click', () => {
      stop.disabled = true;
      api('POST', '/api/v1/runs/' + replyTo + '/stop').catch((err) => onStatus(err.message, true));
    });
    const li = el('li', { class: 'out pending', dataset: { replyTo } }, body, stop);
    e = { li, body, text: '', stop };
    replies.set(replyTo, e);
    const list = $('messages');
    list.appendChild(li);
    scrollDown(list);
  }
  return e;
}

async function loadTools(entry, replyTo) {
  if (entry.toolsLoaded) return;
  entry.toolsLoaded = true;
  try {
    const j = await api('GET', '/api/v1/runs/' + replyTo);
    entry.toolsList.replaceChildren();
    for (const t of j.tools) addTool(entry, t);
  } catch (e) { /* a reply without a run record (a host action's message) */ }
}

function renderMessage(li, m) {
  const text = m.text || '';
  const body = li.querySelector('.body') || li.appendChild(el('div', { class: 'body' }));
  body.replaceChildren();
  if (m.direction === 'in') {
    body.textContent = plain(text);
  } else {
    const refused = REFUSAL_RE.exec(text);
    body.appendChild(markdown(refused ? text.slice(0, refused.index) : text));
    if (refused) {
      li.classList.add('refused');
      body.appendChild(el('div', { class: 'refusal', role: 'alert' }, el('strong', {}, 'clawbox: '),
        plain(refused[1])));
    }
    const f = FILE_RE.exec(text);
    if (f && m.sender === 'clawbox') {
      body.appendChild(el('button', { class: 'download', type: 'button', onclick: () =>
        download('/api/v1/files/' + m.id, f[1]).catch((e) => onStatus(e.message, true)) },
      'Download ' + plain(f[1])));
    }
  }
  let meta = li.querySelector('.meta');
  if (!meta) meta = li.appendChild(el('span', { class: 'meta' }));
  meta.textContent = plain(m.sender || (m.direction === 'in' ? 'you' : 'clawbox')) + ' · ' +
    new Date(m.time * 1000).toLocaleTimeString();
}

function addMessage(m) {
  if (m.id <= lastId) return;
  lastId = m.id;
  const list = $('messages');
  let li;
  if (m.direction === 'out' && m.reply_to) {
    const e = replyEntry(m.reply_to);
    li = e.li;
    li.classList.remove('pending');
    e.stop.remove();
    if (!e.tools) {
      toolsBox(e);
      e.tools.hidden = true; // shown if the run had any (withTools)
      e.tools.addEventListener('toggle', () => loadTools(e, m.reply_to));
      if (!loadingHistory) withTools([m.reply_to]);
    }
  } else {
    li = el('li', { class: m.direction });
    list.appendChild(li);
  }
  li.dataset.id = m.id;
  renderMessage(li, m);
  scrollDown(list);
}

// Deltas come many a second: the reply is rendered again at most every 60 ms, not per delta
// (a 64 KiB reply would otherwise be parsed thousands of times).
function onDelta(d) {
  const e = replyEntry(d.reply_to);
  e.text += d.text;
  if (e.renderTimer) return;
  e.renderTimer = setTimeout(() => {
    e.renderTimer = null;
    if (!e.li.classList.contains('pending')) return; // the final message came meanwhile
    e.body.replaceChildren(markdown(e.text));
    scrollDown($('messages'));
  }, 60);
}

function onTool(t) {
  const e = replyEntry(t.reply_to);
  e.toolsLoaded = true;
  addTool(e, t);
  e.tools.hidden = false;
  e.tools.open = true;
  scrollDown($('messages'));
}

// The replies among replyTos whose runs called tools get their timeline: one request for
// the group's runs says which, then the newest few are loaded (the rest when opened).
let loadingHistory = false;
async function withTools(replyTos) {
  const want = new Set(replyTos.map(Number));
  let j;
  try {
    j = await api('GET', '/api/v1/runs?group=' + encodeURIComponent(group) + '&limit=1000');
  } catch (e) { return; }
  const had = j.runs.filter((r) => want.has(r.message_id) && r.tool_bytes > 2).map((r) => r.message_id);
  had.forEach((id, i) => {
    const e = replies.get(id);
    if (!e || !e.tools) return;
    e.tools.hidden = false;
    if (!e.toolsLoaded) e.toolsCount.textContent = 'tool calls';
    if (i < 5) loadTools(e, id).then(() => scrollDown($('messages'))); // newest first
  });
  scrollDown($('messages'));
}

export async function openGroup(g, status) {
  onStatus = status;
  group = g;
  if (stream) stream.abort();
  $('messages').replaceChildren();
  replies.clear();
  lastId = 0;
  const j = await api('GET', '/api/v1/groups/' + encodeURIComponent(g) + '/messages?after=0');
  loadingHistory = true;
  j.messages.forEach(addMessage);
  loadingHistory = false;
  scrollDown($('messages'), true);
  withTools(j.messages.filter((m) => m.direction === 'out' && m.reply_to).map((m) => m.reply_to));
  follow();
}

function follow() {
  const ctl = new AbortController();
  stream = ctl;
  sse('/api/v1/groups/' + encodeURIComponent(group) + '/events?after=' + lastId, ctl.signal,
    (type, ev) => {
      if (type === 'message') addMessage(ev);
      else if (type === 'delta') onDelta(ev);
      else if (type === 'tool') onTool(ev);
    }, () => onStatus('connected'))
    .then(() => { if (stream === ctl) { onStatus('reconnecting…'); setTimeout(follow, 1000); } })
    .catch((e) => {
      if (e.name === 'AbortError' || stream !== ctl) return;
      onStatus('disconnected: ' + e.message, true);
      if (e.status !== 401) setTimeout(() => { if (stream === ctl) follow(); }, 2000);
    });
}

export function stop() { if (stream) stream.abort(); stream = null; }

async function send() {
  const box = $('text');
  const text = box.value.trim();
  if (!text) return;
  const err = $('send-error');
  err.hidden = true;
  try {
    await api('POST', '/api/v1/groups/' + encodeURIComponent(group) + '/messages', { text, sender: 'web' });
    box.value = '';
  } catch (e) {
    err.textContent = 'Not sent: ' + e.message;
    err.hidden = false;
  }
}

export function init() {
  const list = $('messages');
  list.addEventListener('scroll', () => { stick = nearBottom(list); });
  $('send').addEventListener('submit', (e) => { e.preventDefault(); send(); });
  $('text').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
}
