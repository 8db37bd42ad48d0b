// render.js: a reply's Markdown as DOM. Model text is untrusted: ANSI and other control
// sequences are dropped, raw HTML in it is shown as text (marked's html tokens escaped),
// and marked's output goes through DOMPurify with an allowlist of tags and attributes and
// only http(s)/mailto links, before it reaches the page. Images are not rendered at all (the
// CSP would refuse them anyway; a model must not make the browser fetch things).
'use strict';

import { Marked } from 'marked';
import DOMPurify from 'dompurify';

const ANSI = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])/g;
const CONTROLS = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]/g;

export function plain(text) {
  return String(text).replace(ANSI, '').replace(CONTROLS, '');
}

function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

const marked = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    html({ text }) { return escapeHtml(text); },
    image({ text }) { return escapeHtml(text || ''); },
  },
});

const purify = DOMPurify(window);
const TAGS = ['p', 'br', 'strong', 'em', 'del', 'code', 'pre', 'blockquote', 'ul', 'ol', 'li',
  'a', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'hr',
  'span', 'input'];
purify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer nofollow');
  }
  if (node.tagName === 'INPUT') { // GFM task list boxes only
    if (node.getAttribute('type') !== 'checkbox') node.remove();
    else node.setAttribute('disabled', '');
  }
});

const CONFIG = {
  ALLOWED_TAGS: TAGS,
  ALLOWED_ATTR: ['href', 'title', 'class', 'start', 'type', 'checked', 'disabled', 'align'],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
  RETURN_DOM_FRAGMENT: true,
};

// A DocumentFragment: sanitized Markdown of text.
export function markdown(text) {
  const html = marked.parse(plain(text), { async: false });
  return purify.sanitize(html, CONFIG);
}

// A tool call's summary without the "name: " the agent puts before it.
export function argsOf(t) {
  const s = t.summary || '';
  return s.startsWith(t.name + ': ') ? s.slice(t.name.length + 2) : s;
}

// A tool result's preview (its first 400 bytes, cut and sanitized by the daemon) as a text
// block, or null: a tool's output is never Markdown or HTML, and plain() drops what is left of
// escape sequences. "…" says when the result went on past it (the daemon's preview_cut).
export function previewOf(t) {
  if (typeof t.preview !== 'string' || !t.preview) return null;
  const more = t.preview_cut === true;
  const pre = document.createElement('pre');
  pre.className = 'tool-preview';
  pre.textContent = plain(t.preview) + (more ? '…' : '');
  return pre;
}
