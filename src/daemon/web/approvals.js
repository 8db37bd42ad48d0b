// approvals.js: the Approvals view. The queue of requests the daemon holds for a person (GET
// /api/v1/approvals), one card each saying exactly what will happen: the action, where to,
// the daemon's own rendering of its arguments (or an egress request's body) with their size
// and sha256, the group, the run, why it was held and when it expires, and who may answer
// (the group's policy). Approve, Allow for this run and Deny answer it (POST
// /api/v1/approvals/ID); the daemon records this page's answers as approver "web" (it tells
// a browser from the CLI by headers page script cannot change), so where "web" is not an
// approver the buttons are off and the card says who is. Any action renders the same way:
// host actions and egress requests ("METHOD host:port/path") alike. Polled while visible,
// and more slowly for the count on the navigation button while not.
'use strict';

import { $, el, fmtTime, fmtBytes } from './dom.js';
import { api } from './api.js';
import { plain } from './render.js';
import { placeholder } from './panel.js';

const FAST = 1500, SLOW = 5000;
let timer = null;
let visible = false;
let onStatus = () => {};
const policies = new Map(); // group -> {approvers, at}: the policy, re-read each minute

async function approversOf(group) {
  const p = policies.get(group);
  if (p && Date.now() - p.at < 60000) return p.approvers;
  const j = await api('GET', '/api/v1/groups/' + encodeURIComponent(group) + '/policy');
  const approvers = (j.policy && j.policy.approvers) || [];
  policies.set(group, { approvers, at: Date.now() });
  return approvers;
}

function expiry(a) {
  const s = Math.max(0, a.expires_in - Math.floor((Date.now() - a.seenAt) / 1000));
  return s >= 120 ? 'expires in ' + Math.round(s / 60) + ' min' : 'expires in ' + s + ' s';
}

async function answer(card, a, decision, scope) {
  for (const b of card.querySelectorAll('button')) b.disabled = true;
  const out = card.querySelector('.answer');
  try {
    await api('POST', '/api/v1/approvals/' + a.id, scope ? { decision, scope } : { decision });
    out.textContent = decision === 'deny' ? 'Denied.' : scope === 'run' ? 'Approved for this run.' : 'Approved.';
    out.className = 'answer done';
    card.classList.add('answered');
  } catch (e) {
    out.textContent = 'Not answered: ' + e.message;
    out.className = 'answer error';
    out.setAttribute('role', 'alert');
    for (const b of card.querySelectorAll('button')) b.disabled = !card.dataset.mayAnswer;
  }
  refresh().catch((e) => onStatus(e.message, true));
}

function card(a, approvers) {
  const may = approvers.includes('web');
  const field = (k, v) => [el('dt', {}, k), el('dd', { class: 'f-' + k.replace(/\W+/g, '-') }, v)];
  const c = el('article', { class: 'approval', dataset: { id: a.id, action: plain(a.action), mayAnswer: may ? '1' : '' } },
    el('h3', {}, el('span', { class: 'action' }, plain(a.action)), ' → ', el('span', { class: 'destination' }, plain(a.destination))),
    el('p', { class: 'why' }, plain(a.why)),
    el('pre', { class: 'preview' }, plain(a.preview) + (a.size > new TextEncoder().encode(a.preview).length ? '…' : '')),
    el('dl', {},
      field('size', fmtBytes(a.size) + ' (' + a.size + ' bytes)'),
      field('sha256', el('code', {}, plain(a.sha256))),
      field('group', plain(a.group)),
      field('run', plain(a.run)),
      field('held since', fmtTime(a.created)),
      field('expiry', el('span', { class: 'expiry' }, expiry(a))),
      field('who may answer', approvers.length ? approvers.map(plain).join(', ') : 'nobody')),
    may ? null : el('p', { class: 'not-approver' }, 'This page (approver "web") may not answer for ' + plain(a.group) +
      ': answer with clawbox approve ' + a.id + ' or clawbox deny ' + a.id + ' on the host.'),
    el('div', { class: 'buttons' },
      el('button', { type: 'button', class: 'approve', disabled: !may, onclick: () => answer(c, a, 'approve', 'once') }, 'Approve'),
      el('button', { type: 'button', class: 'approve-run', disabled: !may, onclick: () => answer(c, a, 'approve', 'run') }, 'Allow for this run'),
      el('button', { type: 'button', class: 'deny', disabled: !may, onclick: () => answer(c, a, 'deny') }, 'Deny')),
    el('p', { class: 'answer' }));
  return c;
}

// The cards change only when the queue does: a card being read (or answered) stays put,
// only its expiry ticks.
let shown = '';
async function refresh() {
  const j = await api('GET', '/api/v1/approvals');
  const pending = j.approvals;
  const badge = $('approvals-count');
  badge.textContent = pending.length ? String(pending.length) : '';
  badge.hidden = !pending.length;
  if (!visible) return;
  const now = Date.now();
  for (const a of pending) a.seenAt = now;
  const key = pending.map((a) => a.id).join(',');
  const list = $('approvals-list');
  if (key === shown && list.children.length) {
    for (const a of pending) {
      const e = list.querySelector(`article[data-id="${a.id}"] .expiry`);
      if (e) e.textContent = expiry(a);
    }
  } else {
    const cards = [];
    for (const a of pending) cards.push(card(a, await approversOf(a.group).catch(() => [])));
    list.replaceChildren(...(cards.length ? cards : [placeholder('Nothing waits for an answer.')]));
    shown = key;
  }
  const all = await api('GET', '/api/v1/approvals?all=1');
  const done = all.approvals.filter((a) => a.status !== 'pending').slice(0, 20);
  $('approvals-done').replaceChildren(done.length ? el('table', {},
    el('thead', {}, el('tr', {}, ['#', 'Group', 'Action', 'Destination', 'Status', 'By', 'Outcome'].map((h) => el('th', {}, h)))),
    el('tbody', {}, done.map((a) => el('tr', { dataset: { id: a.id, status: plain(a.status) } },
      [String(a.id), a.group, a.action, a.destination, a.status, a.answered_by || '–', a.outcome].map((v) => el('td', {}, plain(v)))))))
    : placeholder('None yet.'));
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(() => refresh().catch((e) => onStatus(e.message, true)).finally(schedule), visible ? FAST : SLOW);
}

export const approvals = {
  init(status) { onStatus = status || onStatus; },
  // Called once logged in: the count on the navigation button follows the queue.
  start() { refresh().catch(() => {}); schedule(); },
  stop() { clearTimeout(timer); timer = null; },
  async show() { visible = true; shown = ''; await refresh(); schedule(); },
  hide() { visible = false; schedule(); },
};
