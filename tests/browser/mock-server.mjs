// A stand-in for mastd's dashboard listener, for working on the page without a mesh and for
// the quick page test (page.mjs): serves crates/mast-dashboard/ui the way src/assets.rs does
// (`/`, `/static/<file>`) and the JSON API of the contract with a canary-like mesh.
//
//   node tests/browser/mock-server.mjs [--port 8089] [--no-sse]
//   POST /mock/fault (v2 fails with 503s)  POST /mock/heal  POST /mock/down (API answers 502)
//   POST /mock/config (a new configuration generation with a DestinationRule)

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const UI = join(dirname(fileURLToPath(import.meta.url)), '../../crates/mast-dashboard/ui');
const TYPES = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

const state = { fault: false, down: false, generation: 3 };
const HOST = (n) => `${n}.default.svc.cluster.local`;

function edge(source, target, rps, errorRate, extra = {}) {
  const ok = rps * (1 - errorRate);
  const codes = { 200: +ok.toFixed(3) };
  if (errorRate > 0) codes[503] = +(rps * errorRate).toFixed(3);
  return {
    id: `${source}->${target}`, source, target, protocol: 'http', rps, errorRate,
    p50Ms: 1.2, p99Ms: 8.4, mtls: 'mutual_tls', responseCodes: codes, bytesPerSecond: null, ...extra,
  };
}

/** The canary mesh: client → nginx-svc → nginx-1 (v1, 80 %) / nginx-2 (v2, 20 %). */
export function graph() {
  const jitter = 1 + (Math.random() - 0.5) * 0.1;
  const total = 10 * jitter;
  const v2err = state.fault ? 1 : 0;
  const node = (id, kind, name, extra = {}) => ({
    id, kind, name, namespace: 'default', app: null, version: null, parent: null,
    health: 'healthy', proxy: kind === 'workload' ? 'mast-proxy' : null, rps: 0, ...extra,
  });
  const nodes = [
    node('workload:default/client', 'workload', 'client', { app: 'client', health: 'idle' }),
    node(`service:${HOST('nginx-svc')}`, 'service', HOST('nginx-svc'), { rps: total, health: state.fault ? 'failing' : 'healthy' }),
    node('app:default/nginx', 'app', 'nginx', { app: 'nginx', proxy: null }),
    node('workload:default/nginx-1', 'workload', 'nginx-1', { app: 'nginx', version: 'v1.0.0', parent: 'app:default/nginx', rps: total * 0.8 }),
    node('workload:default/nginx-2', 'workload', 'nginx-2', { app: 'nginx', version: 'v1.0.1', parent: 'app:default/nginx', rps: state.fault ? 0 : total * 0.2 }),
    node('workload:default/nginx-3', 'workload', 'nginx-3', { version: 'v1.0.2', health: 'idle' }),
    node(`service:${HOST('nginx-svc-3')}`, 'service', HOST('nginx-svc-3'), { health: 'idle' }),
    node('unknown', 'unknown', 'unknown', { namespace: '', health: 'idle', proxy: null }),
  ];
  const edges = [
    edge('workload:default/client', `service:${HOST('nginx-svc')}`, total, state.fault ? 0.2 : 0),
    edge(`service:${HOST('nginx-svc')}`, 'workload:default/nginx-1', total * 0.8, 0),
    edge(`service:${HOST('nginx-svc')}`, 'workload:default/nginx-2', total * 0.2, v2err),
    edge(`service:${HOST('nginx-svc-3')}`, 'workload:default/nginx-3', 0, 0, { p50Ms: null, p99Ms: null, responseCodes: {} }),
  ];
  return { timestamp: Date.now(), windowSeconds: 30, source: 'proxies', nodes, edges };
}

const SYNC = { CDS: 'SYNCED', EDS: 'SYNCED', LDS: 'SYNCED', RDS: 'SYNCED' };

function workload(name, app, version, rps) {
  return {
    name, namespace: 'default', labels: { ...(app ? { app } : {}), ...(version ? { version } : {}) }, app, version, serviceAccount: app,
    proxies: [{ nodeId: `sidecar~127.0.0.1~${name}.default~default.svc.cluster.local`, proxy: 'mast-proxy', version: '0.1.0',
      adminAddress: '127.0.0.1:15000', sync: name === 'nginx-3' ? { ...SYNC, RDS: 'STALE' } : SYNC, lastNack: null }],
    health: 'healthy', rps, errorRate: 0,
  };
}

const WORKLOADS = () => [workload('client', 'client', null, 0), workload('nginx-1', 'nginx', 'v1.0.0', 8), workload('nginx-2', 'nginx', 'v1.0.1', 2), workload('nginx-3', null, 'v1.0.2', 0)];

function services() {
  const svc = (name, workloads, rps) => ({
    name, namespace: 'default', host: HOST(name), ports: [{ port: 80, name: 'http', protocol: 'HTTP' }],
    endpoints: workloads.length, workloads: workloads.map((w) => `default/${w}`), rps, errorRate: name === 'nginx-svc' && state.fault ? 0.2 : 0,
    health: rps ? (name === 'nginx-svc' && state.fault ? 'failing' : 'healthy') : 'idle',
    config: name === 'nginx-svc' ? [{ kind: 'VirtualService', namespace: 'default', name: 'nginx-svc-vs' }] : [], messages: 0,
  });
  return [svc('nginx-svc', ['nginx-1', 'nginx-2'], 10), svc('nginx-svc-1', ['nginx-1'], 0), svc('nginx-svc-2', ['nginx-2'], 0), svc('nginx-svc-3', ['nginx-3'], 0)];
}

function config() {
  const added = state.generation > 3
    ? [{ kind: 'DestinationRule', apiVersion: 'networking.istio.io/v1', namespace: 'default', name: 'nginx-dr', origin: 'dr.yaml:1' }] : [];
  return {
    generation: state.generation,
    resources: [
      ...added,
      { kind: 'VirtualService', apiVersion: 'networking.istio.io/v1alpha3', namespace: 'default', name: 'nginx-svc-vs', origin: 'virtual-service.yaml:3' },
      ...['nginx-svc', 'nginx-svc-1', 'nginx-svc-2', 'nginx-svc-3'].map((n, i) => ({ kind: 'Service', apiVersion: 'v1', namespace: 'default', name: n, origin: `services.yaml:${1 + i * 14}` })),
    ],
    messages: [
      { code: 'IST0102', level: 'Info', message: 'The namespace is not enabled for Istio injection.', resource: 'Namespace default', origin: null, field: null },
      { code: null, level: 'Error', message: 'weights must add up to 100', resource: 'VirtualService default/broken', origin: 'broken.yaml:7', field: 'spec.http[0].route' },
    ],
  };
}

const NOW = Date.now() * 1000;
const TRACE = {
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  spans: [
    { spanId: 'a1', parentId: null, name: 'nginx-svc:80/*', service: 'client.default', kind: 'CLIENT', startUs: NOW, durationUs: 2400, tags: { 'http.method': 'GET', 'http.status_code': '200', 'upstream_cluster': 'outbound|80||nginx-svc.default.svc.cluster.local' }, error: false },
    { spanId: 'b2', parentId: 'a1', name: 'nginx-svc.default.svc.cluster.local:80/*', service: 'nginx-1.default', kind: 'SERVER', startUs: NOW + 500, durationUs: 1300, tags: { 'http.status_code': '200' }, error: false },
  ],
};

function traces() {
  return [{ traceId: TRACE.traceId, rootService: 'client.default', rootName: 'nginx-svc:80/*', startUs: NOW, durationUs: 2400, spanCount: 2, services: ['client.default', 'nginx-1.default'], error: false }];
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function api(path, res, sse) {
  if (state.down) return json(res, 502, { error: 'mock is down' });
  if (path === '/api/graph') return json(res, 200, graph());
  if (path === '/api/services') return json(res, 200, services());
  if (path === '/api/workloads') return json(res, 200, WORKLOADS());
  const w = path.match(/^\/api\/workloads\/([^/]+)\/([^/]+)$/);
  if (w) {
    const found = WORKLOADS().find((x) => x.namespace === w[1] && x.name === w[2]);
    if (!found) return json(res, 404, { error: 'no such workload' });
    const g = graph();
    return json(res, 200, {
      ...found, config: { listeners: ['virtualOutbound', 'virtualInbound', '0.0.0.0_80'], clusters: ['outbound|80||nginx-svc.default.svc.cluster.local', 'BlackHoleCluster'], routes: ['80'] },
      inbound: g.edges.filter((e) => e.target === `workload:default/${w[2]}`), outbound: g.edges.filter((e) => e.source === `workload:default/${w[2]}`),
    });
  }
  if (path === '/api/config') return json(res, 200, config());
  if (path === '/api/traces') return json(res, 200, traces());
  if (path === `/api/traces/${TRACE.traceId}`) return json(res, 200, TRACE);
  if (path.startsWith('/api/traces/')) return json(res, 404, { error: 'unknown trace' });
  if (path === '/api/events' && sse) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const send = () => res.write(`event: graph\ndata: ${JSON.stringify(graph())}\n\nevent: config\ndata: {"generation": ${state.generation}}\n\n`);
    send();
    const timer = setInterval(send, 2000);
    res.on('close', () => clearInterval(timer));
    return undefined;
  }
  return json(res, 404, { error: 'not found' });
}

/** Starts the mock on `port` (0: a free one); resolves to the server. */
export function start({ port = 0, sse = true } = {}) {
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    try {
      if (req.method === 'POST' && path.startsWith('/mock/')) {
        const what = path.slice(6);
        if (what === 'fault') state.fault = true;
        if (what === 'heal') { state.fault = false; state.down = false; }
        if (what === 'down') state.down = true;
        if (what === 'config') state.generation += 1;
        return json(res, 200, state);
      }
      if (path.startsWith('/api/')) return await api(path, res, sse);
      const file = path === '/' ? 'index.html' : path.startsWith('/static/') ? path.slice(8) : null;
      if (!file || file.includes('/')) return json(res, 404, {});
      const disk = file.startsWith('cytoscape') ? join(UI, 'vendor', file) : join(UI, file);
      const body = await readFile(disk);
      res.writeHead(200, { 'content-type': TYPES[file.split('.').pop()] || 'text/plain' });
      return res.end(body);
    } catch (e) {
      return json(res, 404, { error: String(e.message) });
    }
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--port');
  const server = await start({ port: i > 0 ? Number(process.argv[i + 1]) : 8089, sse: !process.argv.includes('--no-sse') });
  console.log(`mock dashboard on http://127.0.0.1:${server.address().port}/`);
}
