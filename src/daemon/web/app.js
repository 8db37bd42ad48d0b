// app.js: clawbox's web app, served by the daemon (bundled by esbuild into one script, which
// the strict CSP allows as 'self'). Logs in with the API token (from the URL fragment the
// daemon prints, which the browser never sends and the page removes from the address bar, or
// pasted into the form), then shows one view at a time: Conversations, Runs, Audit, Usage,
// Tasks, Approvals and Settings; the header's Pause / Resume holds the group's runs.
'use strict';

import { $, el } from './dom.js';
import { api, getToken, setToken, whenUnauthorized } from './api.js';
import * as chat from './chat.js';
import { runs, audit, usage, tasks, settings, setContext } from './views.js';
import { initPanel, closePanel } from './panel.js';
import { approvals } from './approvals.js';
import * as pause from './pause.js';

const VIEWS = {
  chat: { show() {}, hide() {} },
  runs, audit, usage, tasks, settings,
  approvals,
};
let view = 'chat';
let groups = [];
let group = localStorage.getItem('clawbox-group') || 'main';

const params = new URLSearchParams(location.hash.slice(1));
if (params.get('token')) setToken(params.get('token'));
if (params.get('group')) group = params.get('group');
if (params.get('view') && VIEWS[params.get('view')]) view = params.get('view');
if (location.hash) history.replaceState(null, '', location.pathname); // the token leaves the address bar

function status(text, bad) {
  const s = $('status');
  s.textContent = text;
  s.classList.toggle('bad', !!bad);
}

function showLogin(why) {
  chat.stop();
  approvals.stop();
  VIEWS[view].hide();
  $('app').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = why || '';
  $('login-error').hidden = !why;
  fetch('/login-hint').then((r) => r.json()).then((j) => {
    $('token-path').textContent = j.token_file;
  }).catch(() => {});
  $('token').focus();
}
whenUnauthorized(() => showLogin('The token was refused.'));

function show(name) {
  if (!VIEWS[name]) return;
  VIEWS[view].hide();
  closePanel();
  view = name;
  for (const b of document.querySelectorAll('#nav button')) b.setAttribute('aria-current', String(b.dataset.view === name));
  for (const s of document.querySelectorAll('.view')) s.hidden = s.id !== 'view-' + name;
  document.body.dataset.view = name;
  Promise.resolve(VIEWS[name].show()).catch((e) => status(e.message, true));
}

async function start() {
  if (!getToken()) { showLogin(); return; }
  let st;
  try {
    [groups, st] = await Promise.all([api('GET', '/api/v1/groups').then((j) => j.groups), api('GET', '/api/v1/status')]);
  } catch (e) {
    if (e.status !== 401) status(e.message, true);
    return;
  }
  $('login').hidden = true;
  $('app').hidden = false;
  const banner = $('no-model');
  banner.hidden = st.model_configured;
  if (!st.model_configured) {
    banner.replaceChildren(el('strong', {}, 'No model configured. '),
      'Messages are answered with a hint until one is: set model.base_url (a local Ollama or llama.cpp server) or model.api_key_file in ',
      el('code', {}, st.config_file || 'the configuration'), ', or ', el('code', {}, st.key_env),
      ' in the daemon\'s environment, and restart it.');
  }
  setContext({ groups, status });
  const sel = $('group');
  sel.replaceChildren(...groups.map((g) => el('option', { value: g.id }, g.id)));
  if (!groups.some((g) => g.id === group)) group = groups[0].id;
  sel.value = group;
  pause.showGroup(group, status);
  await chat.openGroup(group, status);
  approvals.start();
  show(view);
  document.body.dataset.ready = '1';
}

$('group').addEventListener('change', (e) => {
  group = e.target.value;
  localStorage.setItem('clawbox-group', group);
  pause.showGroup(group, status);
  chat.openGroup(group, status).catch((err) => status(err.message, true));
});
$('nav').addEventListener('click', (e) => {
  const b = e.target.closest('button[data-view]');
  if (b) show(b.dataset.view);
});
$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  setToken($('token').value.trim());
  $('token').value = '';
  start();
});
$('logout').addEventListener('click', () => {
  setToken('');
  localStorage.removeItem('clawbox-group');
  showLogin('Logged out.');
});
chat.init();
pause.init();
runs.init();
audit.init();
usage.init();
tasks.init();
approvals.init(status);
initPanel();
start();
