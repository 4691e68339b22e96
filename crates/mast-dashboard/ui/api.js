// Shared helpers of the dashboard page: fetching the JSON API (errors go to the banner, never a
// blank page), building DOM safely (text nodes only, no innerHTML of API data), and the number
// formats and health colours every view uses.

/** Health colours, as the legend shows them (Kiali's thresholds: < 1 % / < 20 % / ≥ 20 %). */
export const COLORS = {
  healthy: '#2e8540',
  degraded: '#e07b00',
  failing: '#c9190b',
  idle: '#8a8d90',
};

/** The colour of traffic with this error rate (grey when there is none). */
export function trafficColor(errorRate, rps) {
  if (!(rps > 0)) return COLORS.idle;
  if (errorRate >= 0.2) return COLORS.failing;
  if (errorRate >= 0.01) return COLORS.degraded;
  return COLORS.healthy;
}

/** The health word of traffic with this error rate. */
export function trafficHealth(errorRate, rps) {
  if (!(rps > 0)) return 'idle';
  if (errorRate >= 0.2) return 'failing';
  if (errorRate >= 0.01) return 'degraded';
  return 'healthy';
}

// ---- the error banner -------------------------------------------------------------------------

const problems = new Map();

/** Shows (or replaces) the banner message under `key`. */
export function showProblem(key, message) {
  problems.set(key, message);
  renderBanner();
}

/** Removes the banner message under `key`. */
export function clearProblem(key) {
  if (problems.delete(key)) renderBanner();
}

function renderBanner() {
  const banner = document.getElementById('banner');
  if (!banner) return;
  banner.replaceChildren(
    ...[...problems].map(([key, msg]) =>
      h('div', { class: 'problem', 'data-key': key }, h('span', {}, msg),
        h('button', { class: 'dismiss', title: 'Dismiss', onclick: () => clearProblem(key) }, '×'))));
  banner.hidden = problems.size === 0;
}

/** An API error with the HTTP status (0 when the server could not be reached). */
export class ApiError extends Error {
  constructor(path, status, message) {
    super(message);
    this.path = path;
    this.status = status;
  }
}

/**
 * GETs `path` as JSON. A failure shows in the banner (under `path`, cleared by the next success)
 * and is thrown as an ApiError; `quiet` statuses are thrown without a banner.
 */
export async function getJson(path, { quiet = [] } = {}) {
  let response;
  try {
    response = await fetch(path, { headers: { accept: 'application/json' }, cache: 'no-store' });
  } catch (e) {
    const err = new ApiError(path, 0, `cannot reach mastd (${e.message})`);
    showProblem(path, `${path}: ${err.message}`);
    throw err;
  }
  if (!response.ok) {
    const text = (await response.text().catch(() => '')).trim().slice(0, 200);
    const err = new ApiError(path, response.status,
      `${response.status} ${response.statusText}${text ? `: ${text}` : ''}`);
    if (!quiet.includes(response.status)) showProblem(path, `${path} answered ${err.message}`);
    throw err;
  }
  try {
    const body = await response.json();
    clearProblem(path);
    return body;
  } catch (e) {
    const err = new ApiError(path, response.status, `not JSON (${e.message})`);
    showProblem(path, `${path}: ${err.message}`);
    throw err;
  }
}

// ---- DOM --------------------------------------------------------------------------------------

/**
 * Creates an element: `attrs` are attributes (`on*` functions become listeners, `dataset`
 * an object of data-* values), `children` strings, nodes, arrays or null/false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.entries(v).forEach(([dk, dv]) => { if (dv != null) el.dataset[dk] = dv; });
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** A coloured dot for a health word, with the word as tooltip. */
export function healthDot(health) {
  const word = health || 'idle';
  return h('span', { class: `dot health-${word}`, title: word, 'data-health': word });
}

/** A table: `columns` are [title, (row) => cell content, optional class]. */
export function table(columns, rows, { id, empty = 'Nothing yet.', rowAttrs } = {}) {
  if (!rows.length) return h('p', { class: 'empty', id }, empty);
  return h('table', { class: 'data', id },
    h('thead', {}, h('tr', {}, columns.map(([title, , cls]) => h('th', { class: cls }, title)))),
    h('tbody', {}, rows.map((row) =>
      h('tr', rowAttrs ? rowAttrs(row) : {}, columns.map(([, cell, cls]) => h('td', { class: cls }, cell(row)))))));
}

/** Replaces a view's "Loading…" placeholder (only) with a failure note; the banner says why. */
export function loadFailed(body, what) {
  if (body.querySelector(':scope > p.loading')) {
    body.replaceChildren(h('p', { class: 'empty' }, `Could not load ${what} (see the message above); retrying on the next update.`));
  }
}

/** A link to a hash route. */
export function link(route, text, attrs = {}) {
  return h('a', { href: `#/${route}`, ...attrs }, text);
}

// ---- formats ----------------------------------------------------------------------------------

/** Requests per second: `12.3`, `0.25`, `140`. */
export function fmtRps(x) {
  if (x == null || Number.isNaN(x)) return '–';
  if (x === 0) return '0';
  if (x < 1) return x.toFixed(2);
  if (x < 100) return x.toFixed(1);
  return String(Math.round(x));
}

/** A 0..1 ratio as a percentage: `0.0%`, `12.5%`. */
export function fmtPct(r) {
  if (r == null || Number.isNaN(r)) return '–';
  return `${(r * 100).toFixed(1)}%`;
}

/** Milliseconds: `0.45 ms`, `8.2 ms`, `120 ms`, `1.50 s`. */
export function fmtMs(ms) {
  if (ms == null || Number.isNaN(ms)) return '–';
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms)} ms`;
}

/** Microseconds as a duration. */
export function fmtUs(us) {
  return us == null ? '–' : us < 1000 ? `${Math.round(us)} µs` : fmtMs(us / 1000);
}

/** Bytes per second: `512 B/s`, `1.2 kB/s`. */
export function fmtBytes(bps) {
  if (bps == null || Number.isNaN(bps)) return '–';
  if (bps < 1000) return `${Math.round(bps)} B/s`;
  if (bps < 1e6) return `${(bps / 1e3).toFixed(1)} kB/s`;
  return `${(bps / 1e6).toFixed(1)} MB/s`;
}

/** A service host without the cluster suffix: `nginx-svc.default`. */
export function shortHost(host) {
  return String(host || '').replace(/\.svc\.cluster\.local$/, '').replace(/\.svc$/, '');
}

/** `ns/name` of a namespaced object. */
export function nsName(o) {
  return o.namespace ? `${o.namespace}/${o.name}` : o.name;
}

/** Seconds since a unix-ms time, as `3 s ago`. */
export function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
}
