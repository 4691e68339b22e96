// The service graph's look: the Cytoscape style sheet, the element data the page derives from
// /api/graph (labels, colours, widths: what the browser test reads back), the left-to-right
// layered layout, and the legend.

import { COLORS, fmtBytes, fmtMs, fmtPct, fmtRps, h, shortHost, trafficColor, trafficHealth } from './api.js';

/** Cytoscape's style sheet. */
export const STYLE = [
  {
    selector: 'node',
    style: {
      label: 'data(label)', 'text-wrap': 'wrap', 'font-size': 11, 'font-family': 'system-ui, sans-serif',
      'text-valign': 'bottom', 'text-margin-y': 4, color: '#1f2328',
      'text-background-color': '#ffffff', 'text-background-opacity': 0.85, 'text-background-padding': 1,
      width: 30, height: 30, 'background-color': '#ffffff', 'border-width': 2.5, 'border-color': 'data(color)',
    },
  },
  { selector: 'node[kind="workload"]', style: { shape: 'ellipse', 'background-color': '#e6f0fb' } },
  { selector: 'node[kind="service"]', style: { shape: 'triangle', 'background-color': '#fff2e0', width: 34 } },
  { selector: 'node[kind="unknown"]', style: { shape: 'diamond', 'background-color': '#eeeeee' } },
  {
    selector: 'node[kind="app"], :parent',
    style: {
      shape: 'round-rectangle', 'background-color': '#f4f6f9', 'border-color': '#8a8d90', 'border-width': 1,
      'border-style': 'dashed', 'text-valign': 'top', 'text-halign': 'center', 'text-margin-y': -3,
      'font-weight': 'bold', padding: 14,
    },
  },
  {
    selector: 'edge',
    style: {
      'curve-style': 'bezier', 'target-arrow-shape': 'triangle', 'arrow-scale': 0.9,
      'line-color': 'data(color)', 'target-arrow-color': 'data(color)', width: 'data(width)',
      label: 'data(label)', 'font-size': 9.5, 'font-family': 'system-ui, sans-serif', color: '#1f2328',
      'text-rotation': 'autorotate', 'text-margin-y': -8,
      'text-background-color': '#ffffff', 'text-background-opacity': 0.9, 'text-background-padding': 2,
    },
  },
  { selector: 'edge[mtls="none"]', style: { 'line-style': 'dashed', 'line-dash-pattern': [6, 4] } },
  { selector: 'edge[mtls="unknown"]', style: { 'line-style': 'dotted' } },
  { selector: '.hidden', style: { display: 'none' } },
  { selector: 'node:selected', style: { 'border-width': 4, 'border-color': '#0066cc' } },
  { selector: 'edge:selected', style: { 'overlay-color': '#0066cc', 'overlay-opacity': 0.18, 'overlay-padding': 4 } },
];

/** The Cytoscape data of an API node. */
export function nodeData(n) {
  const label =
    n.kind === 'workload' ? (n.version ? `${n.name}\n${n.version}` : n.name)
      : n.kind === 'service' ? shortHost(n.name).replace(`.${n.namespace}`, '')
        : n.kind === 'app' ? (n.app || n.name) : (n.name || 'unknown');
  return {
    ...n,
    label,
    color: n.kind === 'app' ? '#8a8d90' : COLORS[n.health] || COLORS.idle,
  };
}

/** The label of an edge: `12.3 rps · 0.0% · p99 8 ms` (HTTP, gRPC) or `tcp · 1.2 kB/s`. */
export function edgeLabel(e) {
  if (e.protocol === 'tcp') return e.bytesPerSecond > 0 || e.rps > 0 ? `tcp · ${fmtBytes(e.bytesPerSecond || 0)}` : '';
  if (!(e.rps > 0)) return '';
  const parts = [`${fmtRps(e.rps)} rps`, fmtPct(e.errorRate || 0)];
  if (e.p99Ms != null) parts.push(`p99 ${fmtMs(e.p99Ms)}`);
  return parts.join(' · ');
}

/** The Cytoscape data of an API edge (everything the API gave, plus colour, width, label). */
export function edgeData(e) {
  const traffic = e.protocol === 'tcp' ? Math.max(e.rps || 0, e.bytesPerSecond || 0) : e.rps || 0;
  return {
    ...e,
    responseCodes: e.responseCodes || {},
    color: trafficColor(e.errorRate || 0, traffic),
    health: trafficHealth(e.errorRate || 0, traffic),
    width: traffic > 0 ? 1.5 + Math.min(4.5, Math.log10(1 + traffic) * 1.6) : 1,
    label: edgeLabel(e),
  };
}

/**
 * Positions for a left-to-right layered layout: a node's column is its longest distance from a
 * source of traffic; nodes without edges go to the column their kind usually takes; members of
 * one app box stay together. Returns Map(id → {x, y}).
 */
export function layeredPositions(nodes, allEdges) {
  // Idle edges (configured, no traffic) would pull idle services to the left: lay out by
  // traffic when there is some.
  const busy = allEdges.filter((e) => e.rps > 0 || e.bytesPerSecond > 0);
  const edges = busy.length ? busy : allEdges;
  const leaves = nodes.filter((n) => n.kind !== 'app');
  const ids = new Set(leaves.map((n) => n.id));
  const out = new Map(leaves.map((n) => [n.id, []]));
  const indeg = new Map(leaves.map((n) => [n.id, 0]));
  for (const e of edges) {
    if (!ids.has(e.source) || !ids.has(e.target) || e.source === e.target) continue;
    out.get(e.source).push(e.target);
    indeg.set(e.target, indeg.get(e.target) + 1);
  }
  const depth = new Map();
  const linked = (id) => out.get(id).length > 0 || indeg.get(id) > 0;
  let frontier = leaves.filter((n) => linked(n.id) && indeg.get(n.id) === 0).map((n) => n.id);
  if (!frontier.length) frontier = leaves.filter((n) => linked(n.id)).slice(0, 1).map((n) => n.id);
  frontier.forEach((id) => depth.set(id, 0));
  // Longest path, bounded: a cycle cannot push a node further than the node count.
  for (let round = 0; frontier.length && round < leaves.length; round++) {
    const next = [];
    for (const id of frontier) {
      for (const t of out.get(id)) {
        if ((depth.get(t) ?? -1) < depth.get(id) + 1) { depth.set(t, depth.get(id) + 1); next.push(t); }
      }
    }
    frontier = [...new Set(next)];
  }
  const defaultColumn = { unknown: 0, workload: 2, service: 1 };
  for (const n of leaves) {
    if (!depth.has(n.id)) depth.set(n.id, linked(n.id) ? 0 : defaultColumn[n.kind] ?? 1);
  }
  const columns = new Map();
  for (const n of leaves) {
    const d = depth.get(n.id);
    if (!columns.has(d)) columns.set(d, []);
    columns.get(d).push(n);
  }
  const positions = new Map();
  // Nodes with traffic first (at the top of their column), app members together, then by name.
  const boxBusy = new Set(leaves.filter((n) => n.parent && linked(n.id)).map((n) => n.parent));
  const active = (n) => linked(n.id) || boxBusy.has(n.parent);
  const key = (n) => `${active(n) ? 0 : 1}${n.parent ? n.parent.split('/').pop() : n.name}\u0000${n.name}\u0000${n.version || ''}`;
  for (const [d, column] of columns) {
    column.sort((a, b) => key(a).localeCompare(key(b)));
    let y = 0;
    const ys = column.map((n, i) => {
      // Leave room between app boxes and their neighbours.
      if (i > 0 && (n.parent || column[i - 1].parent) && n.parent !== column[i - 1].parent) y += 30;
      const at = y;
      y += 85;
      return at;
    });
    const shift = (y - 85) / 2;
    column.forEach((n, i) => positions.set(n.id, { x: d * 240, y: ys[i] - shift }));
  }
  return positions;
}

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  Object.entries(attrs).forEach(([k, v]) => el.setAttribute(k, String(v)));
  children.forEach((c) => el.append(c));
  return el;
}

function swatch(shape) {
  const box = svg('svg', { width: 26, height: 16, viewBox: '0 0 26 16', 'aria-hidden': 'true' });
  box.append(shape);
  return box;
}

function line(color, dash) {
  return swatch(svg('line', { x1: 1, y1: 8, x2: 25, y2: 8, stroke: color, 'stroke-width': 2.5, ...(dash ? { 'stroke-dasharray': dash } : {}) }));
}

/** The legend: node shapes, edge colours, line styles. */
export function legend() {
  const row = (icon, text) => h('div', { class: 'legend-row' }, icon, h('span', {}, text));
  const box = h('div', { class: 'legend', id: 'graph-legend' },
    h('button', { class: 'legend-title', title: 'Show or hide the legend', onclick: () => box.classList.toggle('collapsed') }, 'Legend'),
    row(swatch(svg('circle', { cx: 13, cy: 8, r: 6, fill: '#e6f0fb', stroke: COLORS.healthy, 'stroke-width': 2 })), 'workload'),
    row(swatch(svg('polygon', { points: '13,1 20,15 6,15', fill: '#fff2e0', stroke: COLORS.healthy, 'stroke-width': 2 })), 'service'),
    row(swatch(svg('rect', { x: 2, y: 2, width: 22, height: 12, rx: 3, fill: '#f4f6f9', stroke: '#8a8d90', 'stroke-dasharray': '3 2' })), 'app (its versions)'),
    row(swatch(svg('polygon', { points: '13,1 20,8 13,15 6,8', fill: '#eeeeee', stroke: COLORS.idle, 'stroke-width': 2 })), 'unknown source'),
    row(line(COLORS.healthy), 'errors < 1 %'),
    row(line(COLORS.degraded), 'errors < 20 %'),
    row(line(COLORS.failing), 'errors ≥ 20 %'),
    row(line(COLORS.idle), 'no traffic'),
    row(line('#555'), 'mutual TLS'),
    row(line('#555', '6 4'), 'plaintext'),
    row(line('#555', '2 3'), 'mTLS unknown'));
  return box;
}
