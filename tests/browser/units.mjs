// The page's pure helpers, in Node without a browser: number formats, edge labels and colours,
// the layered layout, the span tree of the waterfall.
//
//   node tests/browser/units.mjs      exit 0 when every check passes

import assert from 'node:assert/strict';
import { fmtBytes, fmtMs, fmtPct, fmtRps, shortHost, trafficColor, trafficHealth } from '../../crates/mast-dashboard/ui/api.js';
import { edgeData, edgeLabel, layeredPositions, nodeData } from '../../crates/mast-dashboard/ui/graph-style.js';
import { spanTree } from '../../crates/mast-dashboard/ui/traces.js';

const tests = {
  formats() {
    assert.equal(fmtRps(12.34), '12.3');
    assert.equal(fmtRps(0.25), '0.25');
    assert.equal(fmtRps(140.4), '140');
    assert.equal(fmtRps(0), '0');
    assert.equal(fmtRps(null), '–');
    assert.equal(fmtPct(0), '0.0%');
    assert.equal(fmtPct(0.125), '12.5%');
    assert.equal(fmtMs(8.04), '8.0 ms');
    assert.equal(fmtMs(0.456), '0.46 ms');
    assert.equal(fmtMs(120.4), '120 ms');
    assert.equal(fmtMs(1500), '1.50 s');
    assert.equal(fmtBytes(1234), '1.2 kB/s');
    assert.equal(shortHost('nginx-svc.default.svc.cluster.local'), 'nginx-svc.default');
  },

  healthThresholdsAreTheContracts() {
    assert.equal(trafficHealth(0.0099, 1), 'healthy');
    assert.equal(trafficHealth(0.01, 1), 'degraded');
    assert.equal(trafficHealth(0.1999, 1), 'degraded');
    assert.equal(trafficHealth(0.2, 1), 'failing');
    assert.equal(trafficHealth(0.5, 0), 'idle');
    assert.notEqual(trafficColor(0.2, 1), trafficColor(0.19, 1));
  },

  edgeLabels() {
    const e = { protocol: 'http', rps: 12.34, errorRate: 0, p99Ms: 8, responseCodes: { 200: 12.34 } };
    assert.equal(edgeLabel(e), '12.3 rps · 0.0% · p99 8.0 ms');
    assert.equal(edgeLabel({ ...e, p99Ms: null }), '12.3 rps · 0.0%');
    assert.equal(edgeLabel({ ...e, rps: 0 }), '');
    assert.equal(edgeLabel({ protocol: 'tcp', rps: 0.5, bytesPerSecond: 2048 }), 'tcp · 2.0 kB/s');
    const d = edgeData({ ...e, errorRate: 0.25 });
    assert.equal(d.health, 'failing');
    assert.equal(d.color, trafficColor(0.25, 1));
    assert.ok(d.width > 1);
  },

  nodeLabels() {
    assert.equal(nodeData({ kind: 'workload', name: 'nginx-1', version: 'v1', health: 'healthy' }).label, 'nginx-1\nv1');
    assert.equal(nodeData({ kind: 'service', name: 'nginx-svc.default.svc.cluster.local', namespace: 'default' }).label, 'nginx-svc');
    assert.equal(nodeData({ kind: 'app', name: 'nginx', app: 'nginx' }).label, 'nginx');
  },

  layoutGoesLeftToRightAlongTraffic() {
    const n = (id, kind, extra = {}) => ({ id, kind, name: id, ...extra });
    const nodes = [
      n('svc', 'service'), n('idle-svc', 'service'), n('client', 'workload'), n('app', 'app'),
      n('v1', 'workload', { parent: 'app' }), n('v2', 'workload', { parent: 'app' }),
    ];
    const edges = [
      { source: 'client', target: 'svc', rps: 1 }, { source: 'svc', target: 'v1', rps: 1 },
      { source: 'svc', target: 'v2', rps: 1 }, { source: 'idle-svc', target: 'client', rps: 0 },
    ];
    const p = layeredPositions(nodes, edges);
    assert.ok(!p.has('app'), 'boxes are placed by their children');
    assert.ok(p.get('client').x < p.get('svc').x && p.get('svc').x < p.get('v1').x);
    assert.equal(p.get('v1').x, p.get('v2').x);
    assert.equal(p.get('idle-svc').x, p.get('svc').x, 'an idle service goes to the services column');
    assert.ok(p.get('svc').y < p.get('idle-svc').y, 'busy nodes come first');
    // A cycle does not loop forever.
    const cyc = layeredPositions([n('a', 'workload'), n('b', 'workload')], [{ source: 'a', target: 'b', rps: 1 }, { source: 'b', target: 'a', rps: 1 }]);
    assert.equal(cyc.size, 2);
  },

  spanTreeOrdersParentsFirst() {
    const spans = [
      { spanId: 'c', parentId: 'b', startUs: 3 }, { spanId: 'a', parentId: null, startUs: 1 },
      { spanId: 'b', parentId: 'a', startUs: 2 }, { spanId: 'x', parentId: 'missing', startUs: 0 },
      { spanId: 'self', parentId: 'self', startUs: 5 },
    ];
    const order = spanTree(spans).map(({ span, depth }) => `${span.spanId}${depth}`);
    assert.deepEqual(order, ['x0', 'a0', 'b1', 'c2', 'self0']);
  },
};

let failed = 0;
for (const [name, test] of Object.entries(tests)) {
  try {
    test();
    console.log(`ok ${name}`);
  } catch (e) {
    failed++;
    console.error(`FAIL ${name}: ${e.message}`);
  }
}
process.exit(failed ? 1 : 0);
