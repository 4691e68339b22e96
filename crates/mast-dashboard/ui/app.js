// The dashboard page's entry point: the hash router (#/graph, #/services, #/workloads,
// #/workloads/<ns>/<name>, #/config, #/traces, #/traces/<id>), the top bar's mesh summary, and
// the live feed: server-sent events from /api/events (`graph`, `config`), with polling of
// /api/graph every 5 s whenever no graph arrived for a while (SSE refused, broken or stalled).

import { clearProblem, getJson, h } from './api.js';
import { configView } from './config.js';
import { createGraphView } from './graph.js';
import { proxySynced, servicesView, workloadsView } from './lists.js';
import { traceView, tracesView } from './traces.js';
import { workloadView } from './workload.js';

const POLL_MS = 5000;
const SSE_RETRY_MS = 30000;

const view = document.getElementById('view');
const graphView = createGraphView();
view.append(graphView.el);

/** Route name → [tab, function(params) → {el, refresh?, unmount?}]. */
const ROUTES = {
  services: ['services', servicesView],
  workloads: ['workloads', (p) => (p.length >= 2 ? workloadView(p) : workloadsView())],
  config: ['config', configView],
  traces: ['traces', (p) => (p.length ? traceView(p) : tracesView())],
};

let current = null;
const live = { graphAt: 0, via: null, failed: false, es: null, generation: null };

function route() {
  const parts = (location.hash.replace(/^#\/?/, '') || 'graph').split('/').filter(Boolean);
  const [name, ...params] = parts;
  current?.unmount?.();
  current?.el.remove();
  current = null;
  const entry = ROUTES[name];
  document.querySelectorAll('#tabs a').forEach((a) => a.classList.toggle('active', a.dataset.tab === (entry ? entry[0] : 'graph')));
  document.body.dataset.route = entry ? name : 'graph';
  if (!entry) {
    graphView.show();
    return;
  }
  graphView.hide();
  current = entry[1](params.map(decodeURIComponent));
  view.append(current.el);
}

// ---- live data --------------------------------------------------------------------------------

function onGraph(graph, via) {
  live.graphAt = Date.now();
  live.via = via;
  live.failed = false;
  clearProblem('/api/graph');
  window.mastGraphData = graph;
  graphView.update(graph);
  current?.refresh?.('graph');
  renderLive();
}

function onConfig(data) {
  if (data && data.generation === live.generation) return;
  live.generation = data?.generation ?? null;
  current?.refresh?.('config');
  refreshSummary();
}

async function poll() {
  try {
    onGraph(await getJson('/api/graph'), 'poll');
  } catch {
    live.failed = true;
    renderLive();
  }
}

function connect() {
  if (typeof EventSource !== 'function') return;
  const es = new EventSource('/api/events');
  live.es = es;
  es.addEventListener('graph', (e) => { try { onGraph(JSON.parse(e.data), 'sse'); } catch { /* a bad event: polling covers it */ } });
  es.addEventListener('config', (e) => { try { onConfig(JSON.parse(e.data)); } catch { /* ignored */ } });
  es.addEventListener('open', renderLive);
  es.addEventListener('error', () => {
    renderLive();
    // CLOSED: the server refused the stream (not SSE); the browser will not retry by itself.
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, SSE_RETRY_MS);
  });
}

function renderLive() {
  const el = document.getElementById('live');
  const sseOpen = live.es && live.es.readyState === EventSource.OPEN;
  const fresh = Date.now() - live.graphAt < 3 * POLL_MS;
  const state = live.failed && !fresh ? 'offline' : sseOpen && live.via === 'sse' && fresh ? 'live' : live.graphAt ? 'polling' : 'connecting';
  const text = { live: 'live', polling: 'polling every 5 s', offline: 'mastd unreachable', connecting: 'connecting…' }[state];
  el.dataset.state = state;
  el.title = state === 'live' ? 'Updated by server-sent events after every scrape' : state === 'polling'
    ? 'The event stream is not available: polling /api/graph' : '';
  el.replaceChildren(h('span', { class: 'live-dot' }), text);
}

// Poll while the event stream is not open, or when it stopped bringing graphs.
setInterval(() => {
  const sseOpen = live.es && live.es.readyState === EventSource.OPEN;
  if (!sseOpen || Date.now() - live.graphAt > 2 * POLL_MS) poll();
  else renderLive();
}, POLL_MS);

// ---- mesh summary -----------------------------------------------------------------------------

async function refreshSummary() {
  const el = document.getElementById('summary');
  let services, workloads;
  try {
    [services, workloads] = await Promise.all([getJson('/api/services'), getJson('/api/workloads')]);
  } catch {
    return;
  }
  const proxies = workloads.flatMap((w) => w.proxies || []);
  const synced = proxies.filter(proxySynced).length;
  el.replaceChildren(
    h('a', { href: '#/services', id: 'summary-services' }, `${services.length} services`), ' · ',
    h('a', { href: '#/workloads', id: 'summary-workloads' }, `${workloads.length} workloads`), ' · ',
    h('a', { href: '#/workloads', id: 'summary-proxies', class: synced < proxies.length ? 'warn' : null },
      `${synced}/${proxies.length} proxies synced`));
  el.dataset.services = services.length;
  el.dataset.workloads = workloads.length;
  el.dataset.proxies = proxies.length;
  el.dataset.synced = synced;
}

window.mastStarted = true;
window.addEventListener('hashchange', route);
route();
poll();
connect();
refreshSummary();
setInterval(refreshSummary, 10000);
