// api.js: the daemon's API with the bearer token, and its Server-Sent Events over fetch
// (EventSource cannot send the Authorization header).
'use strict';

const TOKEN_KEY = 'clawbox-token';
let token = localStorage.getItem(TOKEN_KEY) || '';
let onUnauthorized = () => {};

export function setToken(t) {
  token = t;
  if (t) localStorage.setItem(TOKEN_KEY, t); else localStorage.removeItem(TOKEN_KEY);
}
export function getToken() { return token; }
export function whenUnauthorized(f) { onUnauthorized = f; }

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export async function api(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: { 'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let j = null;
  try { j = await r.json(); } catch (e) { j = null; }
  if (r.status === 401) { onUnauthorized(); throw new ApiError(401, 'the token was refused'); }
  if (!r.ok) throw new ApiError(r.status, (j && j.error) || ('HTTP ' + r.status));
  return j;
}

export async function download(path, name) {
  const r = await fetch(path, { headers: { 'Authorization': 'Bearer ' + token } });
  if (!r.ok) throw new ApiError(r.status, 'download: HTTP ' + r.status);
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// Follows an SSE stream until signal aborts it: onEvent(type, data) for each event.
export async function sse(path, signal, onEvent, onOpen) {
  const r = await fetch(path, { headers: { 'Authorization': 'Bearer ' + token }, signal });
  if (r.status === 401) { onUnauthorized(); throw new ApiError(401, 'the token was refused'); }
  if (!r.ok) throw new ApiError(r.status, 'events: HTTP ' + r.status);
  if (onOpen) onOpen();
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
      let ev;
      try { ev = JSON.parse(data); } catch (e) { continue; }
      onEvent(type, ev);
    }
  }
}
