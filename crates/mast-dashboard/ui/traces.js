// Traces (#/traces: the latest traces kept by mastd's collector; #/traces/<id>: one trace as a
// waterfall of spans, tags shown on click).

import { fmtUs, getJson, h, link, loadFailed, table } from './api.js';

const PALETTE = ['#0066cc', '#4cb140', '#8f4700', '#5752d1', '#009596', '#f4b678', '#7d1007', '#73c5c5', '#c58c00', '#a30000'];

/** A stable colour per service name. */
function serviceColor(name) {
  let hash = 0;
  for (const c of String(name)) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

function serviceChip(name) {
  return h('span', { class: 'svc-chip', style: `border-color: ${serviceColor(name)}` }, name);
}

function notEnabled() {
  return h('div', { class: 'empty' },
    h('p', {}, h('strong', {}, 'Tracing is not enabled on this mastd'), ' (the trace API answered 404).'),
    h('p', { class: 'muted' }, 'Start mastd with --trace-sampling PCT (mastctl up does) so that the sidecars send their spans here.'));
}

/** The list of recent traces. */
export function tracesView() {
  const service = h('select', { id: 'trace-service' }, h('option', { value: '' }, 'all services'));
  const limit = h('select', { id: 'trace-limit' }, [20, 50, 100].map((n) => h('option', { value: n }, `last ${n}`)));
  const body = h('div', { class: 'table-wrap' }, h('p', { class: 'muted loading' }, 'Loading traces…'));
  const el = h('section', { class: 'view', id: 'traces-view' },
    h('div', { class: 'view-head' }, h('h2', {}, 'Traces'), h('span', { class: 'spacer' }),
      service, limit, h('button', { onclick: () => load() }, 'Refresh')),
    body);
  const known = new Set();
  async function load() {
    const q = new URLSearchParams({ limit: limit.value });
    if (service.value) q.set('service', service.value);
    let traces;
    try {
      traces = await getJson(`/api/traces?${q}`, { quiet: [404] });
    } catch (e) {
      if (e.status === 404) body.replaceChildren(notEnabled());
      else loadFailed(body, 'the traces');
      return;
    }
    for (const t of traces) for (const s of t.services || []) {
      if (!known.has(s)) { known.add(s); service.append(h('option', { value: s }, s)); }
    }
    const longest = Math.max(1, ...traces.map((t) => t.durationUs || 0));
    body.replaceChildren(table([
      ['When', (t) => new Date((t.startUs || 0) / 1000).toLocaleTimeString()],
      ['Root', (t) => h('span', {}, serviceChip(t.rootService), ' ', link(`traces/${t.traceId}`, t.rootName || '(unnamed)'))],
      ['Duration', (t) => h('span', { class: 'dur' },
        h('span', { class: `dur-bar${t.error ? ' error' : ''}`, style: `width: ${Math.max(2, (100 * (t.durationUs || 0)) / longest)}%` }),
        h('span', {}, fmtUs(t.durationUs))), 'dur-cell'],
      ['Spans', (t) => String(t.spanCount ?? 0), 'num'],
      ['Services', (t) => (t.services || []).map(serviceChip)],
      ['', (t) => (t.error ? h('span', { class: 'badge bad' }, 'error') : ''), 'icon'],
    ], traces, {
      id: 'traces-table',
      empty: 'No traces yet: they appear once requests flow through sidecars with tracing on.',
      rowAttrs: (t) => ({ class: 'clickable', dataset: { traceId: t.traceId, spans: t.spanCount, services: (t.services || []).join(',') },
        onclick: (ev) => { if (ev.target.tagName !== 'A') location.hash = `#/traces/${t.traceId}`; } }),
    }));
  }
  service.addEventListener('change', load);
  limit.addEventListener('change', load);
  load();
  const timer = setInterval(load, 5000);
  return { el, unmount: () => clearInterval(timer) };
}

/** Spans in display order (parents before children, siblings by start) with their depth. */
export function spanTree(spans) {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    if (s.parentId && byId.has(s.parentId) && s.parentId !== s.spanId) {
      if (!children.has(s.parentId)) children.set(s.parentId, []);
      children.get(s.parentId).push(s);
    } else roots.push(s);
  }
  const byStart = (a, b) => (a.startUs || 0) - (b.startUs || 0);
  const out = [];
  const seen = new Set();
  const walk = (s, depth) => {
    if (seen.has(s.spanId)) return;
    seen.add(s.spanId);
    out.push({ span: s, depth });
    (children.get(s.spanId) || []).sort(byStart).forEach((c) => walk(c, depth + 1));
  };
  roots.sort(byStart).forEach((r) => walk(r, 0));
  spans.filter((s) => !seen.has(s.spanId)).forEach((s) => walk(s, 0));
  return out;
}

function tagsRow(span, t0) {
  const tags = Object.entries(span.tags || {}).sort(([a], [b]) => a.localeCompare(b));
  return h('div', { class: 'span-tags' },
    h('table', { class: 'data' }, h('tbody', {},
      h('tr', {}, h('th', {}, 'span'), h('td', {}, h('code', {}, span.spanId), span.parentId ? ` (parent ${span.parentId})` : ' (root)')),
      h('tr', {}, h('th', {}, 'starts at'), h('td', {}, `+${fmtUs((span.startUs || 0) - t0)}`)),
      tags.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, String(v)))))));
}

function waterfall(trace) {
  const spans = trace.spans || [];
  const t0 = Math.min(...spans.map((s) => s.startUs || 0));
  const end = Math.max(...spans.map((s) => (s.startUs || 0) + (s.durationUs || 0)));
  const total = Math.max(1, end - t0);
  const rows = spanTree(spans).map(({ span, depth }) => {
    const left = (100 * ((span.startUs || 0) - t0)) / total;
    const width = Math.max(0.4, (100 * (span.durationUs || 0)) / total);
    const detail = h('div', { class: 'span-detail', hidden: true }, tagsRow(span, t0));
    const row = h('div', { class: `span-row${span.error ? ' error' : ''}`, dataset: { spanId: span.spanId, service: span.service, kind: span.kind || '' },
      onclick: () => { detail.hidden = !detail.hidden; } },
      h('div', { class: 'span-name', style: `padding-left: ${8 + depth * 14}px` },
        serviceChip(span.service), ' ', h('span', {}, span.name), ' ', h('span', { class: 'badge' }, span.kind || '')),
      h('div', { class: 'span-time' },
        h('div', { class: 'span-bar', style: `left: ${left}%; width: ${Math.min(width, 100 - left)}%; background: ${span.error ? '#c9190b' : serviceColor(span.service)}` })),
      h('div', { class: 'span-dur' }, fmtUs(span.durationUs)));
    return [row, detail];
  });
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => h('span', { class: 'tick', style: `left: ${f * 100}%` }, fmtUs(f * total)));
  return h('div', { class: 'waterfall', id: 'waterfall' },
    h('div', { class: 'span-row axis' }, h('div', { class: 'span-name muted' }, 'service · operation · kind'), h('div', { class: 'span-time' }, ticks), h('div', { class: 'span-dur' }, 'duration')),
    rows);
}

/** One trace. */
export function traceView([id]) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading trace…'));
  const el = h('section', { class: 'view', id: 'trace-view', dataset: { traceId: id } },
    h('div', { class: 'crumbs' }, link('traces', 'Traces'), ` / ${id}`), body);
  (async () => {
    let trace;
    try {
      trace = await getJson(`/api/traces/${encodeURIComponent(id)}`, { quiet: [404] });
    } catch (e) {
      if (e.status === 404) body.replaceChildren(h('p', { class: 'empty' }, `Trace ${id} is not (or no longer) kept by mastd.`));
      return;
    }
    const spans = trace.spans || [];
    const services = [...new Set(spans.map((s) => s.service))];
    const t0 = Math.min(...spans.map((s) => s.startUs || 0));
    const end = Math.max(...spans.map((s) => (s.startUs || 0) + (s.durationUs || 0)));
    body.replaceChildren(
      h('div', { class: 'view-head' }, h('h2', {}, 'Trace ', h('code', {}, trace.traceId || id)),
        h('span', { class: 'muted' }, `${spans.length} spans · ${fmtUs(end - t0)} · `, services.map(serviceChip),
          spans.some((s) => s.error) ? h('span', { class: 'badge bad' }, 'error') : null)),
      h('p', { class: 'muted' }, 'Click a span for its tags.'),
      spans.length ? waterfall(trace) : h('p', { class: 'empty' }, 'This trace has no spans.'));
  })();
  return { el };
}
