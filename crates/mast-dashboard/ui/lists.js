// The services list (#/services, #/services/<host> highlights one) and the workloads list
// (#/workloads): tables with health, traffic, sync state and links to the configuration.

import { fmtPct, fmtRps, getJson, h, healthDot, link, loadFailed, shortHost, table } from './api.js';

/** Whether a proxy is in sync: nothing STALE and no NACK outstanding. */
export function proxySynced(p) {
  return !p.lastNack && Object.values(p.sync || {}).every((s) => s !== 'STALE');
}

/** Refetches at most once per `ms` when asked repeatedly (graph events come every scrape). */
export function throttled(fn, ms) {
  let last = 0;
  let timer = null;
  return () => {
    const wait = last + ms - Date.now();
    if (wait <= 0) { last = Date.now(); fn(); return; }
    if (!timer) timer = setTimeout(() => { timer = null; last = Date.now(); fn(); }, wait);
  };
}

function configLinks(config) {
  return (config || []).map((c) => h('div', {}, link(`config/${encodeURIComponent(c.name)}`, `${c.kind} ${c.namespace ? `${c.namespace}/` : ''}${c.name}`)));
}

function ports(s) {
  return (s.ports || []).map((p) => `${p.port}${p.name ? `/${p.name}` : ''}${p.protocol ? ` ${p.protocol}` : ''}`).join(', ');
}

/** The services list. */
export function servicesView(params) {
  const highlight = params[0] ? decodeURIComponent(params[0]) : null;
  const body = h('div', { class: 'table-wrap' }, h('p', { class: 'muted loading' }, 'Loading services…'));
  const el = h('section', { class: 'view', id: 'services-view' },
    h('div', { class: 'view-head' }, h('h2', {}, 'Services'),
      h('span', { class: 'muted' }, 'Every service of the mesh, its health over the rate window and the configuration that applies to it.')),
    body);
  let first = true;
  async function load() {
    let services;
    try { services = await getJson('/api/services'); } catch { loadFailed(body, 'the services'); return; }
    services.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
    body.replaceChildren(table([
      ['', (s) => healthDot(s.health), 'icon'],
      ['Service', (s) => h('span', {}, h('strong', {}, s.name), h('span', { class: 'muted' }, ` ${s.namespace}`))],
      ['Host', (s) => shortHost(s.host)],
      ['Ports', ports],
      ['Endpoints', (s) => String(s.endpoints ?? 0), 'num'],
      ['Workloads', (s) => (s.workloads || []).map((w) => h('div', {}, link(`workloads/${w}`, w)))],
      ['Requests', (s) => `${fmtRps(s.rps)} rps`, 'num'],
      ['Errors', (s) => fmtPct(s.errorRate || 0), 'num'],
      ['Config', (s) => configLinks(s.config)],
      ['Messages', (s) => (s.messages ? link(`config/${encodeURIComponent(s.name)}`, String(s.messages), { class: 'badge warn' }) : '0'), 'num'],
    ], services, {
      id: 'services-table',
      empty: 'No services: add a Kubernetes Service to the configuration folder.',
      rowAttrs: (s) => ({
        id: `svc-${s.namespace}-${s.name}`,
        class: highlight && (highlight === s.host || highlight === s.name) ? 'highlight' : null,
        dataset: { name: s.name, namespace: s.namespace, host: s.host, health: s.health || 'idle' },
      }),
    }));
    if (first && highlight) document.querySelector('tr.highlight')?.scrollIntoView({ block: 'center' });
    first = false;
  }
  load();
  const again = throttled(load, 2000);
  return { el, refresh: again };
}

function syncCell(w) {
  const proxies = w.proxies || [];
  if (!proxies.length) return h('span', { class: 'badge' }, 'no sidecar');
  return proxies.map((p) => proxySynced(p)
    ? h('span', { class: 'badge ok', title: p.nodeId }, 'synced')
    : h('span', { class: 'badge bad', title: p.lastNack || p.nodeId },
      p.lastNack ? 'NACK' : Object.entries(p.sync || {}).filter(([, s]) => s === 'STALE').map(([t]) => t).join(' ') + ' stale'));
}

/** The workloads list. */
export function workloadsView() {
  const body = h('div', { class: 'table-wrap' }, h('p', { class: 'muted loading' }, 'Loading workloads…'));
  const el = h('section', { class: 'view', id: 'workloads-view' },
    h('div', { class: 'view-head' }, h('h2', {}, 'Workloads'),
      h('span', { class: 'muted' }, 'Programs with their sidecars; open one for its proxy configuration and traffic.')),
    body);
  async function load() {
    let workloads;
    try { workloads = await getJson('/api/workloads'); } catch { loadFailed(body, 'the workloads'); return; }
    workloads.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
    body.replaceChildren(table([
      ['', (w) => healthDot(w.health), 'icon'],
      ['Workload', (w) => h('span', {}, link(`workloads/${w.namespace}/${w.name}`, w.name), h('span', { class: 'muted' }, ` ${w.namespace}`))],
      ['App', (w) => w.app || '–'],
      ['Version', (w) => w.version || '–'],
      ['Sidecar', (w) => (w.proxies || []).map((p) => h('div', {}, `${p.proxy}${p.version ? ` ${p.version}` : ''}`))],
      ['Sync', syncCell],
      ['Inbound', (w) => `${fmtRps(w.rps)} rps`, 'num'],
      ['Errors', (w) => fmtPct(w.errorRate || 0), 'num'],
      ['Service account', (w) => w.serviceAccount || '–'],
    ], workloads, {
      id: 'workloads-table',
      empty: 'No workloads yet: start some with mastctl up, or connect a sidecar.',
      rowAttrs: (w) => ({ dataset: { name: w.name, namespace: w.namespace, health: w.health || 'idle' } }),
    }));
  }
  load();
  return { el, refresh: throttled(load, 2000) };
}
