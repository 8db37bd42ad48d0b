// panel.js: the side panel (a run's transcript, a task's history). Esc or its close button
// closes it.
'use strict';

import { $, el } from './dom.js';

export function openPanel(title, ...content) {
  const p = $('panel');
  $('panel-title').textContent = title;
  $('panel-body').replaceChildren(...content);
  p.hidden = false;
  $('panel-close').focus();
}

export function closePanel() {
  $('panel').hidden = true;
}

export function initPanel() {
  $('panel-close').addEventListener('click', closePanel);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !$('panel').hidden) {
      e.preventDefault();
      closePanel();
    }
  });
}

export const placeholder = (text) => el('p', { class: 'empty' }, text);
