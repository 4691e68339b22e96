// Shared by the browser scripts: launching Debian's Chromium through playwright-core (no
// browser download), bounded waits, assertions with clear messages, screenshots, and reading
// the dashboard's graph out of the page (window.mastGraph, the Cytoscape instance).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.MAST_CHROMIUM || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** `--name value` flags (and bare `--flag` as true). */
export function parseArgs(argv = process.argv.slice(2)) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) continue;
    const key = argv[i].slice(2);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out[key] = true;
    else { out[key] = next; i++; }
  }
  return out;
}

/** A failed expectation: the message is what the test prints. */
export class Failure extends Error {}

/** Throws a Failure with `message` (a string or a function giving one) unless `cond`. */
export function check(cond, message) {
  if (!cond) throw new Failure(typeof message === 'function' ? message() : message);
}

/**
 * Calls `probe` every `intervalMs` until it returns a truthy value (returned) or `timeoutMs`
 * passes: then fails with `what` and the last value or error `describe(last)` gives.
 */
export async function waitFor(what, probe, { timeoutMs = 30000, intervalMs = 500, describe = (v) => JSON.stringify(v) } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  let error;
  for (let i = 0; i < 10000; i++) {
    try {
      last = await probe();
      error = undefined;
      if (last) return last;
    } catch (e) {
      error = e;
    }
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  const detail = error ? `${error.message}` : await describe(last);
  throw new Failure(`timed out after ${timeoutMs / 1000} s waiting for ${what}; last seen: ${String(detail).slice(0, 2000)}`);
}

/** Launches Chromium and opens a 1366×768 page that records console errors and failed requests. */
export async function openPage() {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30000 });
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return { browser, page, problems };
}

/** Saves a screenshot `<out>/<name>.png` (when an out folder is given). */
export async function shot(page, out, name) {
  if (!out) return;
  mkdirSync(out, { recursive: true });
  const path = join(out, `${name}.png`);
  await page.screenshot({ path });
  console.log(`screenshot ${path}`);
}

/** The graph as the page shows it: Cytoscape's node and edge data (no positions). */
export async function readGraph(page) {
  return page.evaluate(() => {
    const cy = window.mastGraph;
    if (!cy) return null;
    return {
      nodes: cy.nodes().map((n) => ({ ...n.data(), isParent: n.isParent(), children: n.children().map((c) => c.id()) })),
      edges: cy.edges().map((e) => ({ ...e.data(), visible: e.visible() })),
    };
  });
}

/** The first rate in an edge label (`12.3 rps · …` → 12.3), or 0. */
export function labelRps(label) {
  const m = /([\d.]+) rps/.exec(label || '');
  return m ? Number(m[1]) : 0;
}

/** Short text of a graph for failure messages. */
export function describeGraph(g) {
  if (!g) return 'no graph in the page (window.mastGraph unset)';
  const nodes = g.nodes.map((n) => n.id).join(', ');
  const edges = g.edges.map((e) => `${e.source} -> ${e.target} [${e.label || 'idle'}] ${e.color}`).join('; ');
  return `nodes: ${nodes}\nedges: ${edges}`;
}
