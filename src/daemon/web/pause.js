// pause.js: the header's Pause / Resume button for the group in view. A paused group keeps
// its messages queued and runs nothing (POST /api/v1/groups/G/pause|resume; the state is the
// "paused" of GET /api/v1/groups). The state is read again when the group changes and when the
// page comes back into focus, since the CLI (`clawbox pause`) may have changed it meanwhile.
'use strict';

import { $ } from './dom.js';
import { api } from './api.js';

let group = '';
let onStatus = () => {};
let seq = 0; // only the answer about the latest group is shown

function render(paused) {
  const b = $('group-pause');
  b.hidden = false;
  b.disabled = false;
  b.dataset.paused = String(paused);
  b.setAttribute('aria-pressed', String(paused));
  b.textContent = paused ? 'Resume' : 'Pause';
  b.title = paused ? group + ' is paused: its messages wait in its queue. Resume to run them.'
    : 'Pause ' + group + ': messages wait in its queue and nothing runs (a run in progress is stopped)';
  $('paused-note').hidden = !paused;
}

async function refresh() {
  const mine = ++seq;
  const j = await api('GET', '/api/v1/groups');
  if (mine !== seq) return;
  const g = j.groups.find((x) => x.id === group);
  if (g) render(!!g.paused);
}

export function showGroup(g, status) {
  group = g;
  onStatus = status;
  refresh().catch((e) => onStatus(e.message, true));
}

export function init() {
  const b = $('group-pause');
  b.addEventListener('click', async () => {
    const verb = b.dataset.paused === 'true' ? 'resume' : 'pause';
    const mine = ++seq;
    b.disabled = true;
    try {
      const j = await api('POST', '/api/v1/groups/' + encodeURIComponent(group) + '/' + verb);
      if (mine === seq) render(!!j.paused);
    } catch (e) {
      onStatus(verb + ': ' + e.message, true);
      b.disabled = false;
    }
  });
  window.addEventListener('focus', () => { if (group) refresh().catch(() => {}); });
}
