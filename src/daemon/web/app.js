// clawbox's chat page: talks to the daemon's API with the bearer token. Model text is only
// ever set with textContent, never parsed as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.hash.slice(1));
let token = params.get('token') || localStorage.getItem('clawbox-token') || '';
if (params.get('token')) {
  localStorage.setItem('clawbox-token', token);
  history.replaceState(null, '', location.pathname); // the token leaves the address bar
}
let group = params.get('group') || localStorage.getItem('clawbox-group') || 'main';
let lastId = 0;
let stream = null; // AbortController of the live events
const pending = new Map(); // reply_to -> the element its text streams into

function status(text) { $('status').textContent = text; }

async function api(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: { 'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401) { showLogin(); throw new Error('the token was refused'); }
  const j = await r.json();
  if (!r.ok) throw new Error(j.error || ('HTTP ' + r.status));
  return j;
}

function showLogin() { $('login').hidden = false; $('chat').hidden = true; }

function addMessage(m) {
  if (m.id <= lastId) return;
  lastId = m.id;
  let li = m.direction === 'out' && m.reply_to ? pending.get(m.reply_to) : null;
  if (li) pending.delete(m.reply_to); else li = document.createElement('li');
  li.className = m.direction;
  li.textContent = m.text;
  const meta = document.createElement('span');
  meta.className = 'meta';
  meta.textContent = (m.sender || (m.direction === 'in' ? 'you' : 'clawbox')) + ' · ' +
    new Date(m.time * 1000).toLocaleTimeString();
  li.appendChild(meta);
  li.dataset.id = m.id;
  if (m.reply_to) li.dataset.replyTo = m.reply_to;
  if (!li.isConnected) $('messages').appendChild(li);
  li.scrollIntoView({ block: 'end' });
  if (m.direction === 'out' && m.reply_to && m.reply_to === waitingFor) doneWaiting();
}

function addDelta(d) {
  let li = pending.get(d.reply_to);
  if (!li) {
    li = document.createElement('li');
    li.className = 'out pending';
    li.textContent = '';
    pending.set(d.reply_to, li);
    $('messages').appendChild(li);
  }
  li.textContent += d.text;
}

// Server-Sent Events over fetch (EventSource cannot send the Authorization header).
async function follow() {
  if (stream) stream.abort();
  stream = new AbortController();
  const r = await fetch('/api/v1/groups/' + encodeURIComponent(group) + '/events?after=' + lastId, {
    headers: { 'Authorization': 'Bearer ' + token }, signal: stream.signal,
  });
  if (!r.ok) throw new Error('events: HTTP ' + r.status);
  status('connected');
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let type = 'message', data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) type = line.slice(6).trim();
        else if (line.startsWith('data:')) data += line.slice(5).trim();
      }
      if (!data) continue;
      const ev = JSON.parse(data);
      if (type === 'message') addMessage(ev); else if (type === 'delta') addDelta(ev);
    }
  }
}

async function loadTasks() {
  const j = await api('GET', '/api/v1/tasks');
  const ul = $('tasks');
  ul.replaceChildren();
  for (const t of j.tasks.filter((t) => t.group === group)) {
    const li = document.createElement('li');
    li.textContent = '#' + t.id + ' [' + t.status + '] ' + t.schedule + ': ' + t.prompt;
    ul.appendChild(li);
  }
}

async function openGroup(g) {
  group = g;
  localStorage.setItem('clawbox-group', g);
  $('messages').replaceChildren();
  pending.clear();
  lastId = 0;
  const j = await api('GET', '/api/v1/groups/' + encodeURIComponent(g) + '/messages?after=0');
  j.messages.forEach(addMessage);
  loadTasks().catch(() => {});
  follow().catch((e) => { if (e.name !== 'AbortError') status('disconnected: ' + e.message); });
}

let waitingFor = 0;
function doneWaiting() {
  waitingFor = 0;
  if (params.get('say')) { // scripted use (tests): stop listening once answered
    document.body.dataset.answered = '1';
    if (stream) stream.abort();
  }
}

async function send(text) {
  const j = await api('POST', '/api/v1/groups/' + encodeURIComponent(group) + '/messages',
    { text, sender: 'web' });
  waitingFor = j.id;
}

async function start() {
  if (!token) { showLogin(); return; }
  let groups;
  try { groups = (await api('GET', '/api/v1/groups')).groups; } catch (e) { status(e.message); return; }
  $('login').hidden = true;
  $('chat').hidden = false;
  const sel = $('group');
  sel.replaceChildren();
  for (const g of groups) {
    const o = document.createElement('option');
    o.value = o.textContent = g.id;
    sel.appendChild(o);
  }
  if (!groups.some((g) => g.id === group)) group = groups[0].id;
  sel.value = group;
  await openGroup(group);
  if (params.get('say')) await send(params.get('say'));
}

$('group').addEventListener('change', (e) => openGroup(e.target.value));
$('send').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('text').value.trim();
  if (!text) return;
  $('text').value = '';
  send(text).catch((err) => status(err.message));
});
$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  token = $('token').value.trim();
  localStorage.setItem('clawbox-token', token);
  start();
});
start();
