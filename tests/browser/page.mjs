// The page on its own, against the mock API (mock-server.mjs), in a few seconds and without a
// mesh: every tab renders, the graph's nodes, edges, labels and colours follow the data, clicks
// open the side panel, a fault turns the edge red in place (positions kept), the config tab
// follows `config` events, API errors show a banner, and without server-sent events the page
// falls back to polling.
//
//   node tests/browser/page.mjs [--out DIR]      exit 0 when every check passes

import { start } from './mock-server.mjs';
import { Failure, check, describeGraph, labelRps, openPage, parseArgs, readGraph, shot, waitFor } from './lib.mjs';

const args = parseArgs();
const out = typeof args.out === 'string' ? args.out : null;
const RED = '#c9190b';
const GREEN = '#2e8540';

async function graphChecks(page, base) {
  await page.goto(base);
  const g = await waitFor('the graph with 4 edges', async () => {
    const g = await readGraph(page);
    return g && g.edges.length === 4 && g;
  }, { timeoutMs: 20000, describe: describeGraph });
  const edge = (t) => g.edges.find((e) => e.target === t);
  const v1 = edge('workload:default/nginx-1');
  const v2 = edge('workload:default/nginx-2');
  check(labelRps(v1.label) > labelRps(v2.label) && labelRps(v2.label) > 0, () => `v1 > v2 > 0 in labels: ${describeGraph(g)}`);
  check(/ rps · 0\.0% · p99 8\.4 ms$/.test(v1.label), `label format: ${v1.label}`);
  check(v1.color === GREEN && v2.color === GREEN, () => `green edges: ${describeGraph(g)}`);
  const box = g.nodes.find((n) => n.id === 'app:default/nginx');
  check(box && box.isParent && box.children.sort().join() === 'workload:default/nginx-1,workload:default/nginx-2',
    () => `nginx-1 and nginx-2 in one app box: ${JSON.stringify(box)}`);
  await waitFor('the live indicator (server-sent events)', async () => (await page.getAttribute('#live', 'data-state')) === 'live', { timeoutMs: 20000 });
  await page.evaluate(() => window.mastGraph.getElementById('workload:default/nginx-1').emit('tap'));
  await page.waitForSelector('#graph-panel[data-selected="workload:default/nginx-1"] #panel-link');
  check((await page.getAttribute('#panel-link', 'href')) === '#/workloads/default/nginx-1', 'panel links to the workload page');
  await page.evaluate(() => window.mastGraph.getElementById(window.mastGraph.edges()[2].id()).emit('tap'));
  await page.waitForSelector('#edge-codes');
  await shot(page, out, 'mock-graph');
  const before = await page.evaluate(() => window.mastGraph.getElementById('workload:default/nginx-2').position());
  await fetch(`${base}mock/fault`, { method: 'POST' });
  await waitFor('the v2 edge to turn red', async () => {
    const g = await readGraph(page);
    return g.edges.find((e) => e.target === 'workload:default/nginx-2' && e.color === RED && e.errorRate >= 0.2);
  }, { timeoutMs: 20000, describe: () => 'still not red' });
  const after = await page.evaluate(() => window.mastGraph.getElementById('workload:default/nginx-2').position());
  check(before.x === after.x && before.y === after.y, `positions kept across updates: ${JSON.stringify([before, after])}`);
  await shot(page, out, 'mock-graph-fault');
}

async function tabChecks(page, base) {
  await page.goto(`${base}#/services`);
  await page.waitForSelector('#services-table tr[data-name="nginx-svc"][data-health="failing"]');
  await page.goto(`${base}#/workloads`);
  await page.waitForSelector('#workloads-table tr[data-name="nginx-3"] .badge.bad');
  await page.click('#workloads-table a[href="#/workloads/default/nginx-1"]');
  await page.waitForSelector('#proxies-table [data-type="CDS"][data-status="SYNCED"]');
  await page.waitForSelector('#config-clusters li');
  await page.goto(`${base}#/config`);
  await page.waitForSelector('#resources-table tr[data-kind="VirtualService"][data-name="nginx-svc-vs"]');
  await page.waitForSelector('#messages-table tr[data-level="Error"]');
  await fetch(`${base}mock/config`, { method: 'POST' });
  await page.waitForSelector('#resources-table tr[data-kind="DestinationRule"][data-name="nginx-dr"]');
  await page.fill('#config-filter', 'IST0102');
  await waitFor('the filter to leave one message', async () => (await page.$$('#messages-table tbody tr')).length === 1, { timeoutMs: 10000 });
  await page.goto(`${base}#/traces`);
  await page.click('#traces-table tbody tr');
  await page.waitForSelector('#waterfall .span-row[data-span-id="b2"]');
  await page.click('.span-row[data-span-id="b2"]');
  await page.waitForSelector('.span-detail:not([hidden])');
  await page.goto(`${base}#/traces/nope`);
  await page.waitForSelector('#trace-view .empty');
}

async function errorChecks(page, base) {
  await page.goto(`${base}#/services`);
  await page.waitForSelector('#services-table');
  await fetch(`${base}mock/down`, { method: 'POST' });
  await page.goto(`${base}#/config`);
  await page.waitForSelector('#banner:not([hidden]) .problem');
  const text = await page.textContent('#banner');
  check(/\/api\/config answered 502/.test(text), `banner names the failing call: ${text}`);
  await shot(page, out, 'mock-banner');
  await fetch(`${base}mock/heal`, { method: 'POST' });
  // A broken module: a message, not a blank page.
  await page.route('**/static/app.js', (r) => r.fulfill({ body: 'this is not javascript(', contentType: 'text/javascript' }));
  await page.goto(`${base}?broken`);
  await waitFor('the "scripts did not start" banner', async () => /did not start/.test(await page.textContent('#banner')), { timeoutMs: 10000 });
  await page.unroute('**/static/app.js');
}

async function pollingCheck(page) {
  const server = await start({ sse: false });
  const base = `http://127.0.0.1:${server.address().port}/`;
  try {
    await page.goto(base);
    await waitFor('the polling indicator', async () => (await page.getAttribute('#live', 'data-state')) === 'polling', { timeoutMs: 20000 });
    const first = await page.getAttribute('#graph', 'data-updated');
    await waitFor('a polled update', async () => (await page.getAttribute('#graph', 'data-updated')) !== first, { timeoutMs: 20000 });
  } finally {
    server.close();
  }
}

const server = await start({});
const base = `http://127.0.0.1:${server.address().port}/`;
const { browser, page, problems } = await openPage();
let failed = null;
try {
  await graphChecks(page, base);
  await tabChecks(page, base);
  await errorChecks(page, base);
  await pollingCheck(page);
  const unexpected = problems.filter((p) => !/status of 50[0-9]|status of 404|Unexpected identifier/.test(p));
  check(!unexpected.length, () => `console errors: ${unexpected.join('\n')}`);
} catch (e) {
  failed = e;
  await shot(page, out, 'mock-failure').catch(() => {});
} finally {
  await browser.close();
  server.close();
}
if (failed) {
  console.error(`FAIL: ${failed instanceof Failure ? failed.message : failed.stack}`);
  process.exit(1);
}
console.log('page checks passed');
process.exit(0);
