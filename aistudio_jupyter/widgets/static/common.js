// AI Studio widgets: helpers shared by every widget module (concatenated in front of each one,
// because anywidget loads a module from a blob URL where relative imports do not resolve).
// Rule for every widget: data is rendered as text nodes (aisEl), never through innerHTML.

/* ---------------------------------------------------------------- configuration --------- */

function aisConfig() {
  let page = {};
  const script = document.getElementById('jupyter-config-data');
  if (script) {
    try { page = JSON.parse(script.textContent || '{}') || {}; } catch (e) { page = {}; }
  }
  let baseUrl = page.baseUrl || (document.body && document.body.dataset && document.body.dataset.baseUrl) || '/';
  if (!baseUrl.endsWith('/')) baseUrl += '/';
  const base = new URL(baseUrl, window.location.href);
  const token = page.token || '';
  const apiUrl = base.href + 'aistudio/api';
  const ws = new URL(base.href + 'aistudio/api/events');
  ws.protocol = ws.protocol === 'https:' ? 'wss:' : 'ws:';
  if (token) ws.searchParams.set('token', token);
  return { baseUrl, token, apiUrl, wsUrl: ws.href };
}

/* ---------------------------------------------------------------- REST ------------------- */

class AisError extends Error {
  constructor({ status = 0, code = 'error', message = '', details = null, retryAfter = null, requestId = null } = {}) {
    super(message || code);
    this.name = 'AisError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
    this.requestId = requestId;
  }
  get retryable() {
    return [0, 408, 425, 429, 500, 502, 503, 504].includes(this.status);
  }
}

function aisCookie(name) {
  const prefix = name + '=';
  for (const part of (document.cookie || '').split(';')) {
    const item = part.trim();
    if (item.startsWith(prefix)) return decodeURIComponent(item.slice(prefix.length));
  }
  return '';
}

function aisQuery(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === '') continue;
    if (Array.isArray(value)) value.forEach((v) => q.append(key, String(v)));
    else q.append(key, String(value));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

async function aisApi(path, { method = 'GET', body, params, timeoutMs = 15000, signal } = {}) {
  const cfg = aisConfig();
  const url = cfg.apiUrl + path + aisQuery(params);
  const headers = { Accept: 'application/json' };
  const xsrf = aisCookie('_xsrf');
  if (xsrf) headers['X-XSRFToken'] = xsrf;
  if (cfg.token) headers['Authorization'] = 'token ' + cfg.token;
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  // the caller's signal (a page scrolled past) cancels the request on the wire too
  let cancelled = false;
  if (signal) {
    if (signal.aborted) { cancelled = true; abort.abort(); }
    else signal.addEventListener('abort', () => { cancelled = true; abort.abort(); }, { once: true });
  }
  let response;
  let text;
  try {
    response = await fetch(url, { method, headers, body: payload, credentials: 'same-origin', signal: abort.signal });
    text = await response.text();
  } catch (e) {
    throw new AisError(cancelled
      ? { status: 0, code: 'aborted', message: 'The request was cancelled.' }
      : abort.signal.aborted
      ? { status: 0, code: 'timeout', message: `No answer from the server within ${Math.round(timeoutMs / 1000)} s.` }
      : { status: 0, code: 'unreachable', message: 'The server could not be reached.' });
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = null; }
  }
  if (!response.ok) {
    const env = (data && data.error) || {};
    const retry = parseFloat(response.headers.get('Retry-After') || '');
    throw new AisError({
      status: response.status,
      code: env.code || 'http_error',
      message: env.message || (text && !data ? text.slice(0, 300) : response.statusText),
      details: env.details || null,
      retryAfter: Number.isFinite(retry) ? retry : null,
      requestId: env.request_id || response.headers.get('X-Request-Id'),
    });
  }
  return data;
}

/* ---------------------------------------------------------------- live events ------------ */

// One WebSocket per page, shared by every widget (each widget module has its own copy of this
// code, so the hub lives on globalThis). Each listener keeps the last seq it handed out: after
// a reconnect every topic resumes from the lowest of its listeners' seqs, and each listener
// drops what it has already seen, so nobody misses or repeats an event.
class AisEventHub {
  constructor(url) {
    this.url = url;
    this.topics = new Map(); // topic -> Set of listeners {last, onEvent, onError, onAck}
    this.stateListeners = new Set();
    this.state = 'closed';
    this.ws = null;
    this.attempt = 0;
    this.reconnectTimer = null;
    this.pingTimer = null;
  }

  subscribe(topic, since, onEvent, { onError, onAck } = {}) {
    const listener = { last: Number.isInteger(since) ? since : null, onEvent, onError, onAck };
    let listeners = this.topics.get(topic);
    const fresh = !listeners;
    if (fresh) { listeners = new Set(); this.topics.set(topic, listeners); }
    const before = this._since(topic);
    listeners.add(listener);
    const after = this._since(topic);
    // a newcomer that needs older events restarts the topic (the others drop the repeats)
    if (fresh || (after !== null && (before === null || after < before))) this._sendSubscribe(topic);
    else if (listener.last === null && this.state === 'open') listener.last = listeners.head ?? null;
    this._ensure();
    return {
      close: () => {
        listeners.delete(listener);
        if (!listeners.size && this.topics.get(topic) === listeners) {
          this.topics.delete(topic);
          this._send({ op: 'unsubscribe', topic });
          if (!this.topics.size) this._shutdown();
        }
      },
    };
  }

  onState(fn) {
    this.stateListeners.add(fn);
    fn(this.state);
    return () => this.stateListeners.delete(fn);
  }

  _since(topic) {
    let low = null;
    for (const l of this.topics.get(topic) || []) {
      if (l.last === null) continue;
      low = low === null ? l.last : Math.min(low, l.last);
    }
    return low;
  }

  _setState(state) {
    if (state === this.state) return;
    this.state = state;
    for (const fn of this.stateListeners) { try { fn(state); } catch (e) { console.error(e); } }
  }

  _send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  _sendSubscribe(topic) {
    const since = this._since(topic);
    const op = { op: 'subscribe', topic };
    if (since !== null) op.since = since;
    this._send(op);
  }

  _ensure() {
    if (this.ws || this.reconnectTimer || !this.topics.size) return;
    this._connect();
  }

  _connect() {
    this.reconnectTimer = null;
    let ws;
    try { ws = new WebSocket(this.url); } catch (e) { this._retry(); return; }
    this.ws = ws;
    this._setState(this.attempt ? 'reconnecting' : 'connecting');
    ws.onopen = () => {
      this.attempt = 0;
      this._setState('open');
      for (const topic of this.topics.keys()) this._sendSubscribe(topic);
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this._send({ op: 'ping' }), 25000);
    };
    ws.onmessage = (msg) => {
      let m;
      try { m = JSON.parse(msg.data); } catch (e) { return; }
      this._dispatch(m);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.pingTimer);
      if (this.topics.size) this._retry(); else this._setState('closed');
    };
    ws.onerror = () => {}; // onclose follows and schedules the reconnect
  }

  _retry() {
    this.ws = null;
    this.attempt += 1;
    this._setState('reconnecting');
    const delay = Math.min(10000, 250 * 2 ** Math.min(this.attempt, 6)) * (0.75 + Math.random() / 2);
    this.reconnectTimer = setTimeout(() => this._connect(), delay);
  }

  _shutdown() {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    clearInterval(this.pingTimer);
    const ws = this.ws;
    this.ws = null;
    this.attempt = 0;
    if (ws) ws.close();
    this._setState('closed');
  }

  _dispatch(m) {
    const listeners = m.topic ? this.topics.get(m.topic) : null;
    if (m.op === 'subscribed') {
      if (!listeners) return;
      listeners.head = m.seq;
      for (const l of listeners) {
        if (l.last === null) l.last = m.seq;
        if (l.onAck) l.onAck(m);
      }
      return;
    }
    if (m.op === 'error') {
      for (const l of listeners || []) if (l.onError) l.onError(new AisError({ status: 0, code: (m.error || {}).code || 'error', message: (m.error || {}).message || '' }));
      return;
    }
    if (m.op || !listeners || !Number.isInteger(m.seq)) return; // pong, unsubscribed
    listeners.head = Math.max(listeners.head ?? 0, m.seq);
    for (const l of listeners) {
      if (l.last !== null && m.seq <= l.last) continue;
      l.last = m.seq;
      try { l.onEvent(m); } catch (e) { console.error('AI Studio widget: event handler failed', e); }
    }
  }
}

function aisEvents() {
  const url = aisConfig().wsUrl;
  const hubs = (globalThis.__aisEventHubs = globalThis.__aisEventHubs || new Map());
  if (!hubs.has(url)) hubs.set(url, new AisEventHub(url));
  return hubs.get(url);
}

/* ---------------------------------------------------------------- DOM -------------------- */

function aisEl(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : String(value);
    else if (key === 'style' && typeof value === 'object') Object.assign(el.style, value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on')) {
      // only functions: a string handler would be code built from data
      if (typeof value === 'function') el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'selected') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  aisAppend(el, children);
  return el;
}

function aisAppend(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) aisAppend(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

function aisClear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

function aisFriendly(err) {
  const status = err && Number.isInteger(err.status) ? err.status : 0;
  const code = (err && err.code) || 'error';
  const detail = (err && (err.detail || err.message)) || '';
  // each widget module has its own AisError class: recognise one by its name, not instanceof
  const fromApi = Boolean(err && err.name === 'AisError');
  // the Python side's `error` trait: its message is already the friendly sentence
  if (err && !fromApi && 'retryable' in err && err.message) return err.message;
  let lead;
  if (code === 'timeout') lead = 'The server took too long to answer.';
  else if (status === 0 && code === 'unreachable') lead = 'Cannot reach the AI Studio server. Check that Jupyter is still running, then retry.';
  else if (status === 0 && fromApi) lead = 'The request failed.';
  else if (status === 0) lead = 'Something went wrong while showing this widget.';
  else if (status === 401) lead = 'You are no longer signed in to AI Studio. Sign in again, then retry.';
  else if (status === 403) lead = 'You are not allowed to do this.';
  else if (status === 404) lead = 'Not found: it was deleted, or it is not visible to you.';
  else if (status === 409) lead = 'That conflicts with the current state.';
  else if (status === 429) lead = 'Too many requests or a quota was reached.' + (err.retryAfter ? ` Retry in ${Math.ceil(err.retryAfter)} s.` : '');
  else if (status >= 502 && status <= 504) lead = 'The AI Studio server is busy or unavailable right now. Retry in a moment.';
  else if (status >= 500) lead = 'The AI Studio server ran into a problem.';
  else lead = 'The server refused the request.';
  return detail && !lead.includes(detail) ? `${lead} ${detail}` : lead;
}

function aisErrorBox(err, onRetry) {
  const box = aisEl('div', { class: 'ais-error', role: 'alert', 'data-testid': 'ais-error' },
    aisEl('span', { class: 'ais-error-text' }, aisFriendly(err)));
  if (onRetry) {
    const button = aisEl('button', {
      class: 'ais-btn', 'data-testid': 'ais-retry', type: 'button',
      onclick: async () => {
        button.disabled = true;
        try { await onRetry(); } finally { button.disabled = false; }
      },
    }, 'Retry');
    box.appendChild(button);
  }
  return box;
}

// Every rule is scoped under .ais-widget (the class aisMount puts on each widget's element):
// JupyterLab pages also load other .ais-* stylesheets (the sidebar's), which must not restyle
// widgets, and the widgets' rules must not restyle the sidebar.
const AIS_CSS = `
.ais-widget { font-family: var(--jp-ui-font-family, system-ui, sans-serif); font-size: var(--jp-ui-font-size1, 13px);
  color: var(--jp-ui-font-color1, #222); }
.ais-widget * { box-sizing: border-box; }
.ais-widget .ais-row { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
.ais-widget .ais-grow { flex: 1 1 auto; }
.ais-widget .ais-muted { color: var(--jp-ui-font-color2, #666); }
.ais-widget .ais-card { border: 1px solid var(--jp-border-color2, #ddd); border-radius: 4px; padding: 8px; margin: 4px 0;
  background: var(--jp-layout-color1, #fff); }
.ais-widget .ais-title { font-weight: 600; font-size: var(--jp-ui-font-size2, 15px); }
.ais-widget .ais-error { border: 1px solid var(--jp-error-color1, #d32f2f); background: var(--jp-error-color3, #fdecea);
  color: var(--jp-error-color0, #b71c1c); border-radius: 4px; padding: 6px 8px; margin: 4px 0; display: flex; gap: 8px;
  align-items: center; white-space: pre-wrap; }
.ais-widget .ais-error .ais-error-text { flex: 1 1 auto; }
.ais-widget .ais-btn { cursor: pointer; border: 1px solid var(--jp-border-color1, #bbb); background: var(--jp-layout-color2, #f3f3f3);
  color: inherit; border-radius: 3px; padding: 2px 10px; font: inherit; }
.ais-widget .ais-btn:disabled { opacity: 0.5; cursor: default; }
.ais-widget .ais-btn.ais-danger { border-color: var(--jp-error-color1, #d32f2f); color: var(--jp-error-color1, #d32f2f); }
.ais-widget .ais-badge { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 11px; line-height: 18px;
  background: var(--jp-layout-color3, #ddd); }
.ais-widget .ais-state-running, .ais-widget .ais-state-ready, .ais-widget .ais-state-loading, .ais-widget .ais-state-starting { background: #1976d2; color: #fff; }
.ais-widget .ais-state-succeeded, .ais-widget .ais-state-production { background: #2e7d32; color: #fff; }
.ais-widget .ais-state-failed, .ais-widget .ais-state-lost { background: #c62828; color: #fff; }
.ais-widget .ais-state-canceled, .ais-widget .ais-state-stopped, .ais-widget .ais-state-archived { background: #757575; color: #fff; }
.ais-widget .ais-state-queued, .ais-widget .ais-state-pending, .ais-widget .ais-state-staging { background: #f9a825; color: #000; }
.ais-widget .ais-progress { height: 8px; background: var(--jp-layout-color3, #e0e0e0); border-radius: 4px; overflow: hidden; flex: 1 1 120px; }
.ais-widget .ais-progress > div { height: 100%; background: #1976d2; width: 0; transition: width 0.3s; }
.ais-widget .ais-table { border-collapse: collapse; width: 100%; }
.ais-widget .ais-table th, .ais-widget .ais-table td { text-align: left; padding: 2px 6px; border-bottom: 1px solid var(--jp-border-color3, #eee);
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 320px; }
.ais-widget .ais-table th { font-weight: 600; }
.ais-widget .ais-log { font-family: var(--jp-code-font-family, monospace); font-size: 12px; white-space: pre-wrap; max-height: 180px;
  overflow: auto; background: var(--jp-layout-color2, #f7f7f7); padding: 4px; margin: 0; }
.ais-widget .ais-charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 8px; }
.ais-widget .ais-chart { position: relative; }
.ais-widget .ais-chart canvas { width: 100%; height: 160px; display: block; }
.ais-widget .ais-chart-tip { position: absolute; pointer-events: none; background: rgba(30,30,30,0.85); color: #fff; font-size: 11px;
  padding: 2px 6px; border-radius: 3px; white-space: pre; display: none; z-index: 2; }
.ais-widget .ais-meter { height: 6px; background: var(--jp-layout-color3, #e0e0e0); border-radius: 3px; overflow: hidden; }
.ais-widget .ais-meter > div { height: 100%; background: #1976d2; }
.ais-widget .ais-meter.ais-over > div { background: #c62828; }
.ais-widget .ais-row { padding: 0; border-bottom: 0; }
.ais-widget .ais-title { text-transform: none; letter-spacing: normal; }
.ais-widget .ais-meter { margin: 0; }
.ais-widget .ais-error { border-left-width: 1px; }
`;

function aisStyle() {
  if (document.getElementById('ais-widget-style')) return;
  document.head.appendChild(aisEl('style', { id: 'ais-widget-style' }, AIS_CSS));
}

// A widget's render wrapped so that any failure shows an error box inside this widget only
// (with a Retry that renders it again) and never propagates into other widgets.
function aisMount(render) {
  return function mount({ model, el }) {
    let cleanup = null;
    const fail = (err) => {
      console.error('AI Studio widget failed', err);
      try { if (typeof cleanup === 'function') cleanup(); } catch (e) { /* already broken */ }
      cleanup = null;
      aisClear(el);
      el.appendChild(aisErrorBox(err, () => start()));
    };
    const start = () => {
      aisClear(el);
      el.classList.add('ais-widget');
      try {
        const out = render({ model, el });
        if (out && typeof out.then === 'function') out.then((fn) => { cleanup = fn; }, fail);
        else cleanup = out;
      } catch (err) {
        fail(err);
      }
    };
    try { aisStyle(); } catch (e) { /* no document head: styles are cosmetic */ }
    start();
    return () => { if (typeof cleanup === 'function') { try { cleanup(); } catch (e) { console.error(e); } } };
  };
}

// Shows the Python side's `error` trait (a failed load in the kernel) in `box`, with a Retry.
function aisBindError(model, box, onRetry) {
  const show = () => {
    aisClear(box);
    const err = model.get('error');
    if (err) box.appendChild(aisErrorBox(err, onRetry));
  };
  model.on('change:error', show);
  show();
  return () => model.off('change:error', show);
}

/* ---------------------------------------------------------------- formatting ------------- */

const aisFormat = {
  number(v, digits = 4) {
    if (v === null || v === undefined || Number.isNaN(v)) return '–';
    if (!Number.isFinite(v)) return v > 0 ? '∞' : '-∞';
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(Math.max(0, digits - 2));
    return String(Number(v.toPrecision(digits)));
  },
  int(v) { return v === null || v === undefined ? '–' : Math.round(v).toLocaleString('en-US'); },
  compact(v) {
    if (v === null || v === undefined) return '–';
    const a = Math.abs(v);
    for (const [n, s] of [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']]) if (a >= n) return (v / n).toFixed(a / n >= 100 ? 0 : 1) + s;
    return String(Math.round(v * 100) / 100);
  },
  bytes(v) {
    if (v === null || v === undefined) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    let x = Math.abs(v);
    while (x >= 1024 && i < units.length - 1) { x /= 1024; i += 1; }
    return (v < 0 ? '-' : '') + (i ? x.toFixed(x >= 100 ? 0 : 1) : String(x)) + ' ' + units[i];
  },
  duration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–';
    let s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + 's';
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    return `${m}m ${s}s`;
  },
  percent(f, digits = 0) { return f === null || f === undefined ? '–' : (f * 100).toFixed(digits) + '%'; },
  money(v) { return v === null || v === undefined ? '–' : '$' + Number(v).toFixed(2); },
  time(t) {
    if (!t) return '–';
    const d = typeof t === 'number' ? new Date(t * 1000) : new Date(t);
    return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString();
  },
  ago(t) {
    if (!t) return '–';
    const d = typeof t === 'number' ? t * 1000 : Date.parse(t);
    if (Number.isNaN(d)) return String(t);
    return aisFormat.duration((Date.now() - d) / 1000) + ' ago';
  },
};

/* ---------------------------------------------------------------- charts ----------------- */

const AIS_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

// TensorBoard's smoothing: an exponential moving average, debiased so the first points are not
// dragged towards zero.
function aisSmooth(values, weight) {
  if (!weight || weight <= 0) return values.slice();
  const out = [];
  let last = 0;
  let n = 0;
  for (const v of values) {
    if (!Number.isFinite(v)) { out.push(v); continue; }
    n += 1;
    last = last * weight + (1 - weight) * v;
    out.push(last / (1 - weight ** n));
  }
  return out;
}

function aisNiceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function aisCanvasSize(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width || 300;
  const height = canvas.clientHeight || canvas.height || 160;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return { ctx, width, height };
}

function aisTip(canvas) {
  const parent = canvas.parentElement;
  if (!parent) return null;
  let tip = parent.querySelector(':scope > .ais-chart-tip');
  if (!tip) { tip = aisEl('div', { class: 'ais-chart-tip' }); parent.appendChild(tip); }
  return tip;
}

// series: [{name, points: [{step, value, wall_time, epoch?}], color?}]
// options: {logY, smoothing (0..<1), xKey: 'step' | 'epoch' | 'time'}
// Returns {update(series, options), redraw(), destroy()}; canvas.dataset.points = raw points drawn.
function aisLineChart(canvas, series, options = {}) {
  let state = { series: series || [], options: { logY: false, smoothing: 0, xKey: 'step', ...options } };
  let hover = null;
  let layout = null;

  const xOf = (p, t0) => {
    const key = state.options.xKey;
    if (key === 'time') return Number.isFinite(p.wall_time) ? p.wall_time - t0 : NaN;
    if (key === 'epoch') return Number.isFinite(p.epoch) ? p.epoch : NaN;
    return p.step;
  };

  const prepare = () => {
    const { logY, smoothing } = state.options;
    let t0 = Infinity;
    for (const s of state.series) for (const p of s.points || []) if (p.wall_time < t0) t0 = p.wall_time;
    let total = 0;
    const lines = state.series.map((s, i) => {
      const pts = (s.points || []).filter((p) => Number.isFinite(p.value) && Number.isFinite(xOf(p, t0)) && (!logY || p.value > 0));
      total += (s.points || []).length;
      const xs = pts.map((p) => xOf(p, t0));
      const ys = pts.map((p) => (logY ? Math.log10(p.value) : p.value));
      return { name: s.name, color: s.color || AIS_COLORS[i % AIS_COLORS.length], xs, ys, smooth: aisSmooth(ys, smoothing), raw: pts };
    });
    return { lines, total };
  };

  const draw = () => {
    const { ctx, width, height } = aisCanvasSize(canvas);
    const { lines, total } = prepare();
    canvas.dataset.points = String(total);
    ctx.clearRect(0, 0, width, height);
    const pad = { l: 48, r: 8, t: 8, b: 20 };
    let xlo = Infinity, xhi = -Infinity, ylo = Infinity, yhi = -Infinity;
    for (const l of lines) {
      for (let i = 0; i < l.xs.length; i += 1) {
        xlo = Math.min(xlo, l.xs[i]); xhi = Math.max(xhi, l.xs[i]);
        ylo = Math.min(ylo, l.ys[i]); yhi = Math.max(yhi, l.ys[i]);
      }
    }
    ctx.font = '10px sans-serif';
    ctx.fillStyle = getComputedStyle(canvas).color || '#666';
    if (!Number.isFinite(xlo)) {
      ctx.fillText('no data yet', width / 2 - 25, height / 2);
      layout = null;
      return;
    }
    if (xhi === xlo) { xhi = xlo + 1; }
    if (yhi === ylo) { const d = Math.abs(ylo) * 0.1 || 1; ylo -= d; yhi += d; }
    const ypad = (yhi - ylo) * 0.05;
    ylo -= ypad; yhi += ypad;
    const sx = (x) => pad.l + ((x - xlo) / (xhi - xlo)) * (width - pad.l - pad.r);
    const sy = (y) => height - pad.b - ((y - ylo) / (yhi - ylo)) * (height - pad.t - pad.b);
    layout = { lines, sx, sy, xlo, xhi, pad, width, height };

    // axes and ticks
    ctx.strokeStyle = 'rgba(128,128,128,0.25)';
    ctx.lineWidth = 1;
    const { logY, xKey } = state.options;
    const yTicks = logY ? aisNiceTicks(Math.floor(ylo), Math.ceil(yhi), 4).filter((t) => Number.isInteger(t) && t >= ylo && t <= yhi) : aisNiceTicks(ylo, yhi, 4);
    for (const t of yTicks) {
      const y = sy(t);
      ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(width - pad.r, y); ctx.stroke();
      ctx.fillText(logY ? aisFormat.number(10 ** t, 2) : aisFormat.number(t, 3), 2, y + 3);
    }
    for (const t of aisNiceTicks(xlo, xhi, Math.max(2, Math.floor(width / 80)))) {
      const x = sx(t);
      ctx.beginPath(); ctx.moveTo(x, pad.t); ctx.lineTo(x, height - pad.b); ctx.stroke();
      const label = xKey === 'time' ? aisFormat.duration(t) : aisFormat.compact(t);
      ctx.fillText(label, x - 8, height - 6);
    }

    // lines: the raw series faint under the smoothed one
    const smoothing = state.options.smoothing > 0;
    for (const l of lines) {
      const pass = (ys, alpha, widthPx) => {
        ctx.globalAlpha = alpha;
        ctx.strokeStyle = l.color;
        ctx.lineWidth = widthPx;
        ctx.beginPath();
        for (let i = 0; i < l.xs.length; i += 1) {
          const x = sx(l.xs[i]); const y = sy(ys[i]);
          if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
        }
        ctx.stroke();
        if (l.xs.length === 1) { ctx.fillStyle = l.color; ctx.fillRect(sx(l.xs[0]) - 2, sy(ys[0]) - 2, 4, 4); }
      };
      if (smoothing) pass(l.ys, 0.25, 1);
      pass(smoothing ? l.smooth : l.ys, 1, 1.5);
    }
    ctx.globalAlpha = 1;

    if (hover !== null) drawHover();
  };

  const drawHover = () => {
    const tip = aisTip(canvas);
    if (!layout || !tip) return;
    const { lines, sx, sy, pad, height } = layout;
    const { ctx } = aisCanvasSize(canvas);
    let best = null;
    for (const l of lines) {
      for (let i = 0; i < l.xs.length; i += 1) {
        const d = Math.abs(sx(l.xs[i]) - hover);
        if (!best || d < best.d) best = { d, x: l.xs[i] };
      }
    }
    if (!best) return;
    const rows = [];
    const { logY, xKey, smoothing } = state.options;
    rows.push(`${xKey} ${xKey === 'time' ? aisFormat.duration(best.x) : aisFormat.number(best.x, 6)}`);
    for (const l of lines) {
      let k = -1;
      let dk = Infinity;
      for (let i = 0; i < l.xs.length; i += 1) { const d = Math.abs(l.xs[i] - best.x); if (d < dk) { dk = d; k = i; } }
      if (k < 0) continue;
      const value = l.raw[k].value;
      const smooth = logY ? 10 ** l.smooth[k] : l.smooth[k];
      rows.push(`${l.name}: ${aisFormat.number(value)}` + (smoothing > 0 ? ` (smoothed ${aisFormat.number(smooth)})` : ''));
      ctx.fillStyle = l.color;
      ctx.beginPath(); ctx.arc(sx(l.xs[k]), sy(smoothing > 0 ? l.smooth[k] : l.ys[k]), 3, 0, 2 * Math.PI); ctx.fill();
    }
    const x = sx(best.x);
    ctx.strokeStyle = 'rgba(128,128,128,0.6)';
    ctx.beginPath(); ctx.moveTo(x, pad.t); ctx.lineTo(x, height - pad.b); ctx.stroke();
    tip.textContent = rows.join('\n');
    tip.style.display = 'block';
    tip.style.left = Math.min(x + 8, Math.max(0, canvas.clientWidth - tip.offsetWidth)) + 'px';
    tip.style.top = '4px';
  };

  const onMove = (e) => {
    const rect = canvas.getBoundingClientRect();
    hover = e.clientX - rect.left;
    draw();
  };
  const onLeave = () => {
    hover = null;
    const tip = aisTip(canvas);
    if (tip) tip.style.display = 'none';
    draw();
  };
  canvas.addEventListener('mousemove', onMove);
  canvas.addEventListener('mouseleave', onLeave);
  const resize = typeof ResizeObserver === 'function' ? new ResizeObserver(() => draw()) : null;
  if (resize) resize.observe(canvas);
  draw();

  return {
    update(newSeries, newOptions) {
      if (newSeries) state.series = newSeries;
      if (newOptions) state.options = { ...state.options, ...newOptions };
      draw();
    },
    redraw: draw,
    destroy() {
      canvas.removeEventListener('mousemove', onMove);
      canvas.removeEventListener('mouseleave', onLeave);
      if (resize) resize.disconnect();
    },
  };
}

// bins: [{lo, hi, count}] (numeric histogram) or [{label, count}] (categories);
// {edges: [...], counts: [...]} is accepted too. Returns {update(bins), destroy()}.
function aisBars(canvas, bins, options = {}) {
  let current = [];
  let hover = null;
  const normalise = (b) => {
    if (b && Array.isArray(b.counts)) return b.counts.map((count, i) => ({ lo: b.edges[i], hi: b.edges[i + 1], count }));
    return (b || []).map((x) => (typeof x === 'number' ? { count: x } : x));
  };
  const label = (b) => (b.label !== undefined ? String(b.label)
    : (b.lo !== undefined ? `${aisFormat.number(b.lo, 3)} – ${aisFormat.number(b.hi, 3)}` : ''));
  const draw = () => {
    const { ctx, width, height } = aisCanvasSize(canvas);
    canvas.dataset.bars = String(current.length);
    ctx.clearRect(0, 0, width, height);
    if (!current.length) return;
    const max = Math.max(1, ...current.map((b) => b.count || 0));
    const w = width / current.length;
    current.forEach((b, i) => {
      const h = ((b.count || 0) / max) * (height - 4);
      ctx.fillStyle = i === hover ? '#ff7f0e' : (options.color || '#1f77b4');
      ctx.fillRect(i * w + 0.5, height - h, Math.max(1, w - 1), h);
    });
    const tip = aisTip(canvas);
    if (tip) {
      if (hover === null || !current[hover]) tip.style.display = 'none';
      else {
        tip.textContent = `${label(current[hover])}\n${aisFormat.int(current[hover].count)}`;
        tip.style.display = 'block';
        tip.style.left = Math.min(hover * w, Math.max(0, width - tip.offsetWidth)) + 'px';
        tip.style.top = '0px';
      }
    }
  };
  const onMove = (e) => {
    const rect = canvas.getBoundingClientRect();
    const i = Math.floor(((e.clientX - rect.left) / rect.width) * current.length);
    hover = i >= 0 && i < current.length ? i : null;
    draw();
  };
  const onLeave = () => { hover = null; draw(); };
  canvas.addEventListener('mousemove', onMove);
  canvas.addEventListener('mouseleave', onLeave);
  current = normalise(bins);
  draw();
  return {
    update(newBins) { current = normalise(newBins); draw(); },
    destroy() { canvas.removeEventListener('mousemove', onMove); canvas.removeEventListener('mouseleave', onLeave); },
  };
}

// A status badge whose class follows the state (ais-state-running ...), text only.
function aisBadge(state, attrs = {}) {
  return aisEl('span', { class: `ais-badge ais-state-${String(state || 'unknown').replace(/[^a-z_-]/gi, '')}`, ...attrs }, String(state || 'unknown'));
}
