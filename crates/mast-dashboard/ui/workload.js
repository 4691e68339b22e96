// One workload's page (#/workloads/<namespace>/<name>): its labels, its proxies' sync status per
// xDS type (last NACK in red), the listeners/clusters/routes mastd generated for it, and its
// inbound and outbound traffic.

import { fmtMs, fmtPct, fmtRps, getJson, h, healthDot, link, loadFailed, shortHost, table, trafficHealth } from './api.js';
import { throttled } from './lists.js';

const SYNC_CLASS = { SYNCED: 'ok', STALE: 'bad', 'NOT SENT': '' };
const TYPE_ORDER = ['CDS', 'EDS', 'LDS', 'RDS', 'SDS'];

/** A graph node id as a link: `workload:ns/name` → the workload page, `service:host` → services. */
function peer(id) {
  const [kind, rest] = String(id).split(/:(.*)/s);
  if (kind === 'workload' && rest) return link(`workloads/${rest}`, rest);
  if (kind === 'service' && rest) return link(`services/${rest}`, shortHost(rest));
  return rest || id;
}

function edgeTable(edges, side, id) {
  return table([
    ['', (e) => healthDot(trafficHealth(e.errorRate || 0, e.rps)), 'icon'],
    [side === 'source' ? 'From' : 'To', (e) => peer(e[side])],
    ['Protocol', (e) => e.protocol || 'http'],
    ['Requests', (e) => `${fmtRps(e.rps)} rps`, 'num'],
    ['Errors', (e) => fmtPct(e.errorRate || 0), 'num'],
    ['p50', (e) => fmtMs(e.p50Ms), 'num'],
    ['p99', (e) => fmtMs(e.p99Ms), 'num'],
    ['mTLS', (e) => (e.mtls === 'mutual_tls' ? 'mutual TLS' : e.mtls || 'unknown')],
    ['Codes', (e) => Object.entries(e.responseCodes || {}).map(([c, r]) => h('span', { class: `code code-${c[0]}xx` }, `${c}: ${fmtRps(r)}`))],
  ], edges, { id, empty: 'No traffic in the window.' });
}

function syncBadges(p) {
  const types = Object.keys(p.sync || {}).sort((a, b) => {
    const ia = TYPE_ORDER.indexOf(a), ib = TYPE_ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  return types.map((t) => h('span', { class: `badge ${SYNC_CLASS[p.sync[t]] ?? ''}`, dataset: { type: t, status: p.sync[t] } }, `${t} ${p.sync[t]}`));
}

function proxiesTable(proxies) {
  return table([
    ['Node', (p) => h('code', {}, p.nodeId)],
    ['Sidecar', (p) => `${p.proxy}${p.version ? ` ${p.version}` : ''}`],
    ['Admin', (p) => p.adminAddress || '–'],
    ['Sync', syncBadges],
    ['Last NACK', (p) => (p.lastNack ? h('span', { class: 'nack' }, p.lastNack) : '–')],
  ], proxies, { id: 'proxies-table', empty: 'No proxy connected for this workload.' });
}

function configList(title, names) {
  const list = [...(names || [])].sort();
  return h('div', { class: 'config-col' },
    h('h4', {}, `${title} `, h('span', { class: 'muted' }, `(${list.length})`)),
    list.length ? h('ul', { class: 'names', id: `config-${title.toLowerCase()}` }, list.map((n) => h('li', {}, h('code', {}, n))))
      : h('p', { class: 'muted' }, 'none'));
}

function render(w) {
  const labels = Object.entries(w.labels || {}).sort();
  return [
    h('div', { class: 'view-head' },
      h('h2', {}, healthDot(w.health), ' ', w.name, h('span', { class: 'muted' }, ` ${w.namespace}`)),
      h('span', { class: 'muted' }, [w.app && `app ${w.app}`, w.version && `version ${w.version}`,
        w.serviceAccount && `service account ${w.serviceAccount}`,
        `${fmtRps(w.rps)} rps in`, `${fmtPct(w.errorRate || 0)} errors`].filter(Boolean).join(' · '))),
    h('div', { class: 'chips', id: 'workload-labels' }, labels.map(([k, v]) => h('span', { class: 'chip' }, `${k}=${v}`))),
    h('h3', {}, 'Proxies'), proxiesTable(w.proxies || []),
    h('div', { class: 'two-col' },
      h('div', {}, h('h3', {}, 'Inbound'), edgeTable(w.inbound || [], 'source', 'inbound-table')),
      h('div', {}, h('h3', {}, 'Outbound'), edgeTable(w.outbound || [], 'target', 'outbound-table'))),
    h('h3', {}, 'Proxy configuration'),
    h('div', { class: 'config-cols' },
      configList('Listeners', w.config?.listeners), configList('Clusters', w.config?.clusters), configList('Routes', w.config?.routes)),
  ];
}

/** The workload page of `[namespace, name]`. */
export function workloadView([namespace, name]) {
  const body = h('div', {}, h('p', { class: 'muted loading' }, 'Loading…'));
  const el = h('section', { class: 'view', id: 'workload-view', dataset: { namespace, name } },
    h('div', { class: 'crumbs' }, link('workloads', 'Workloads'), ` / ${namespace} / ${name}`), body);
  const path = `/api/workloads/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`;
  async function load() {
    try {
      body.replaceChildren(...render(await getJson(path, { quiet: [404] })));
    } catch (e) {
      if (e.status === 404) body.replaceChildren(h('p', { class: 'empty' }, `No workload ${namespace}/${name} in the mesh.`));
      else loadFailed(body, 'the workload');
    }
  }
  load();
  return { el, refresh: throttled(load, 3000) };
}
