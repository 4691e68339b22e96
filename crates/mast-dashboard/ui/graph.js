// The live service graph (#/graph): Cytoscape with workload, service, app and unknown nodes,
// edges coloured by error rate and labelled with rate, errors and p99; updated in place from
// each /api/graph body (positions kept; laid out again only when nodes appear); a side panel
// with the numbers of the clicked node or edge. Exposes `window.mastGraph` (the Cytoscape
// instance) for tests and the console.

import { ago, fmtBytes, fmtMs, fmtPct, fmtRps, h, healthDot, link, shortHost, showProblem } from './api.js';
import { STYLE, edgeData, layeredPositions, legend, nodeData } from './graph-style.js';

/** Creates the graph view once; it stays in the page (hidden on other tabs) to keep positions. */
export function createGraphView() {
  const canvas = h('div', { id: 'graph', class: 'graph-canvas', 'data-nodes': 0, 'data-edges': 0 });
  const meta = h('span', { id: 'graph-meta', class: 'muted' }, 'waiting for the first graph…');
  const empty = h('div', { id: 'graph-empty', class: 'graph-empty', hidden: true },
    h('strong', {}, 'No traffic yet.'),
    h('p', {}, 'Send requests through the mesh, for example ',
      h('code', {}, 'mastctl exec client -- curl -s http://nginx-svc/'), ': nodes and edges appear within seconds.'));
  const hideIdle = h('input', { type: 'checkbox', id: 'hide-idle' });
  const panel = h('aside', { id: 'graph-panel', class: 'side-panel' });
  const el = h('section', { id: 'graph-view', class: 'view graph-view', hidden: true },
    h('div', { class: 'graph-main' },
      h('div', { class: 'graph-toolbar' }, meta, h('span', { class: 'spacer' }),
        h('label', { title: 'Hide nodes and edges without traffic' }, hideIdle, ' hide idle'),
        h('button', { id: 'graph-fit', onclick: () => cy && fitView() }, 'Fit'),
        h('button', { id: 'graph-relayout', onclick: () => layout(true) }, 'Re-layout')),
      canvas, empty, legend()),
    panel);

  let cy = null;
  let last = null;
  let selected = null;
  // Edges that have carried traffic: a new one changes the layering, so the graph is laid
  // out again (never for an edge that merely went idle and back: no jumping around).
  const everBusy = new Set();

  function init() {
    if (cy) return true;
    if (typeof window.cytoscape !== 'function') {
      showProblem('cytoscape', 'The graph library (/static/cytoscape.min.js) did not load: the graph cannot be drawn.');
      return false;
    }
    cy = window.cytoscape({
      container: canvas, style: STYLE, elements: [], minZoom: 0.2, maxZoom: 3,
      wheelSensitivity: 0.3, boxSelectionEnabled: false, autoungrabify: false,
    });
    window.mastGraph = cy;
    cy.on('tap', 'node, edge', (e) => select(e.target.id()));
    cy.on('tap', (e) => { if (e.target === cy) select(null); });
    return true;
  }

  function layout(fit) {
    if (!cy) return;
    const visible = cy.elements().not('.hidden');
    const positions = layeredPositions(visible.nodes().map((n) => n.data()), visible.edges().map((e) => e.data()));
    cy.nodes().not(':parent').forEach((n) => { const p = positions.get(n.id()); if (p) n.position(p); });
    if (fit) fitView();
  }

  function fitView() {
    cy.fit(cy.elements().not('.hidden'), 30);
    if (cy.zoom() > 1.3) { cy.zoom(1.3); cy.center(cy.elements().not('.hidden')); }
  }

  /** Applies a graph body in place; lays out again only when nodes or traffic paths appear. */
  function update(graph) {
    last = graph;
    if (!init()) return;
    const nodes = (graph.nodes || []).map(nodeData);
    const ids = new Set(nodes.map((n) => n.id));
    const edges = (graph.edges || []).map(edgeData).filter((e) => ids.has(e.source) && ids.has(e.target));
    const edgeIds = new Set(edges.map((e) => e.id));
    let added = false;
    cy.batch(() => {
      // Boxes first, so that children can be placed in them.
      const ordered = [...nodes].sort((a, b) => (b.kind === 'app') - (a.kind === 'app'));
      for (const n of ordered) {
        const parent = n.parent && ids.has(n.parent) && n.parent !== n.id ? n.parent : null;
        const { parent: _ignored, ...data } = n;
        const ele = cy.getElementById(n.id);
        if (ele.empty()) {
          cy.add({ group: 'nodes', data: { ...data, parent } });
          added = true;
        } else {
          if ((ele.data('parent') ?? null) !== parent) ele.move({ parent });
          ele.data(data);
        }
      }
      for (const e of edges) {
        const ele = cy.getElementById(e.id);
        if (ele.nonempty() && (ele.data('source') !== e.source || ele.data('target') !== e.target)) ele.remove();
        if (cy.getElementById(e.id).empty()) cy.add({ group: 'edges', data: e });
        else cy.getElementById(e.id).data(e);
      }
      cy.edges().filter((e) => !edgeIds.has(e.id())).remove();
      cy.nodes().filter((n) => !ids.has(n.id())).remove();
      applyHideIdle();
    });
    const busy = edges.filter((e) => e.rps > 0 || e.bytesPerSecond > 0).map((e) => e.id);
    const grew = busy.filter((id) => !everBusy.has(id)).length > 0;
    busy.forEach((id) => everBusy.add(id));
    if (added || grew) layout(true);
    canvas.dataset.nodes = String(cy.nodes().length);
    canvas.dataset.edges = String(cy.edges().length);
    canvas.dataset.updated = String(graph.timestamp ?? Date.now());
    canvas.dataset.source = graph.source || '';
    empty.hidden = edges.some((e) => e.rps > 0 || e.bytesPerSecond > 0);
    renderMeta();
    renderPanel();
  }

  function applyHideIdle() {
    cy.elements().removeClass('hidden');
    if (!hideIdle.checked) return;
    cy.edges().filter((e) => !(e.data('rps') > 0 || e.data('bytesPerSecond') > 0)).addClass('hidden');
    cy.nodes().not(':parent').filter((n) => n.connectedEdges().not('.hidden').empty()).addClass('hidden');
    cy.nodes(':parent').filter((n) => n.children().not('.hidden').empty()).addClass('hidden');
  }
  hideIdle.addEventListener('change', () => { if (cy) { cy.batch(applyHideIdle); layout(true); } });

  function renderMeta() {
    if (!last) return;
    const win = last.windowSeconds ? ` · rates over ${last.windowSeconds} s` : '';
    meta.textContent = `${last.source === 'prometheus' ? 'from Prometheus' : 'from the proxies'}${win} · updated ${ago(last.timestamp || Date.now())}`;
  }
  setInterval(() => { if (!el.hidden) renderMeta(); }, 1000);

  function select(id) {
    selected = id;
    if (cy) {
      cy.elements().unselect();
      if (id) cy.getElementById(id).select();
    }
    renderPanel();
  }

  function renderPanel() {
    const ele = cy && selected ? cy.getElementById(selected) : null;
    if (!ele || ele.empty()) {
      panel.replaceChildren(...summaryPanel(cy).filter(Boolean));
      panel.dataset.selected = '';
      return;
    }
    panel.dataset.selected = selected;
    panel.replaceChildren(...(ele.isNode() ? nodePanel(ele, select) : edgePanel(ele, select)).filter(Boolean));
  }

  return {
    el,
    show() { el.hidden = false; if (cy) { cy.resize(); } else if (last) update(last); },
    hide() { el.hidden = true; },
    update,
  };
}

function nodeName(n) {
  return n.data('kind') === 'service' ? shortHost(n.data('name')) : n.data('label').replace('\n', ' ');
}

function stat(label, value, attrs = {}) {
  return h('div', { class: 'stat', ...attrs }, h('span', { class: 'stat-label' }, label), h('span', { class: 'stat-value' }, value));
}

function summaryPanel(cy) {
  const items = [h('h3', {}, 'Service graph'),
    h('p', { class: 'muted' }, 'Click a node or an edge for its numbers. Drag nodes to arrange them; scroll to zoom.')];
  if (!cy) return items;
  const traffic = cy.edges().filter((e) => e.data('rps') > 0);
  const worst = traffic.max((e) => e.data('errorRate') || 0);
  items.push(stat('nodes', String(cy.nodes().not(':parent').length)), stat('edges with traffic', String(traffic.length)));
  if (worst.ele && worst.value > 0) {
    items.push(stat('highest error rate', h('a', { href: '#', onclick: (ev) => { ev.preventDefault(); worst.ele.trigger('tap'); } },
      `${fmtPct(worst.value)} ${nodeName(worst.ele.source())} → ${nodeName(worst.ele.target())}`)));
  }
  return items;
}

function edgeRow(e, peer, select) {
  return h('li', {}, h('a', { href: '#', onclick: (ev) => { ev.preventDefault(); select(e.id()); } }, nodeName(peer)),
    ` ${e.data('label') || 'idle'}`);
}

function nodePanel(n, select) {
  const d = n.data();
  const title = h('h3', {}, healthDot(d.health), ' ', nodeName(n));
  const items = [title, h('div', { class: 'muted' }, `${d.kind}${d.namespace ? ` in ${d.namespace}` : ''}`)];
  if (d.kind === 'app') {
    items.push(h('p', {}, 'Versions of app ', h('strong', {}, d.app || d.name), ':'),
      h('ul', {}, n.children().map((c) => h('li', {}, h('a', { href: '#', onclick: (ev) => { ev.preventDefault(); select(c.id()); } }, nodeName(c))))));
    return items;
  }
  const inbound = n.incomers('edge');
  const outbound = n.outgoers('edge');
  const sum = (es, k) => es.reduce((s, e) => s + (e.data(k) || 0), 0);
  const inRps = sum(inbound, 'rps');
  const inErr = inRps > 0 ? inbound.reduce((s, e) => s + (e.data('rps') || 0) * (e.data('errorRate') || 0), 0) / inRps : 0;
  items.push(
    d.app ? stat('app', d.app) : null,
    d.version ? stat('version', d.version) : null,
    d.proxy ? stat('sidecar', d.proxy) : null,
    stat('health', d.health || 'idle'),
    stat('inbound', `${fmtRps(d.rps ?? inRps)} rps`, { 'data-stat': 'rps' }),
    stat('inbound errors', fmtPct(inErr)),
    stat('outbound', `${fmtRps(sum(outbound, 'rps'))} rps`));
  if (d.kind === 'workload') items.push(h('p', {}, link(`workloads/${d.namespace}/${d.name}`, 'Open the workload page →', { id: 'panel-link' })));
  if (d.kind === 'service') items.push(h('p', {}, link(`services/${d.name}`, 'Open in the services list →', { id: 'panel-link' })));
  if (inbound.length) items.push(h('h4', {}, 'From'), h('ul', { class: 'edge-list' }, inbound.map((e) => edgeRow(e, e.source(), select))));
  if (outbound.length) items.push(h('h4', {}, 'To'), h('ul', { class: 'edge-list' }, outbound.map((e) => edgeRow(e, e.target(), select))));
  return items;
}

const MTLS = { mutual_tls: 'mutual TLS', none: 'plaintext', unknown: 'unknown' };

function edgePanel(e, select) {
  const d = e.data();
  const codes = Object.entries(d.responseCodes || {}).sort(([a], [b]) => a.localeCompare(b));
  const total = codes.reduce((s, [, r]) => s + r, 0);
  const peer = (n) => h('a', { href: '#', onclick: (ev) => { ev.preventDefault(); select(n.id()); } }, nodeName(n));
  return [
    h('h3', {}, healthDot(d.health), ' ', peer(e.source()), ' → ', peer(e.target())),
    h('div', { class: 'muted' }, `${d.protocol || 'http'} edge`),
    stat('requests', `${fmtRps(d.rps)} rps`, { 'data-stat': 'rps' }),
    stat('error rate', fmtPct(d.errorRate || 0), { 'data-stat': 'errorRate' }),
    stat('latency p50', fmtMs(d.p50Ms)),
    stat('latency p99', fmtMs(d.p99Ms)),
    stat('security', MTLS[d.mtls] || d.mtls || 'unknown'),
    d.bytesPerSecond != null ? stat('bytes', fmtBytes(d.bytesPerSecond)) : null,
    h('h4', {}, 'Response codes'),
    codes.length
      ? h('table', { class: 'data codes', id: 'edge-codes' },
        h('thead', {}, h('tr', {}, h('th', {}, 'code'), h('th', { class: 'num' }, 'rps'), h('th', { class: 'num' }, 'share'))),
        h('tbody', {}, codes.map(([code, rps]) => h('tr', { class: `code-${code[0]}xx` },
          h('td', {}, code), h('td', { class: 'num' }, fmtRps(rps)), h('td', { class: 'num' }, fmtPct(total ? rps / total : 0))))))
      : h('p', { class: 'muted' }, 'No requests in the window.'),
  ];
}
