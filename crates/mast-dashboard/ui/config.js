// The Istio configuration (#/config, #/config/<filter>): validation and analyzer messages
// (level, code, resource, file:line, message) above the resources mastd serves; reloaded on
// every `config` event.

import { getJson, h, loadFailed, table } from './api.js';

const LEVELS = { Error: 0, Warning: 1, Info: 2 };

function matches(filter, ...fields) {
  if (!filter) return true;
  const f = filter.toLowerCase();
  return fields.some((v) => v != null && String(v).toLowerCase().includes(f));
}

/** The folder every absolute origin (`/dir/file.yaml:12`) shares, to show origins shorter. */
function commonFolder(origins) {
  const dirs = origins.filter((o) => o && o.startsWith('/')).map((o) => o.slice(0, o.lastIndexOf('/') + 1));
  if (!dirs.length) return '';
  let prefix = dirs[0];
  for (const d of dirs) while (!d.startsWith(prefix)) prefix = prefix.slice(0, prefix.slice(0, -1).lastIndexOf('/') + 1);
  return prefix.length > 1 ? prefix : '';
}

function origin(o, folder) {
  if (!o) return '–';
  return h('code', { title: o }, folder && o.startsWith(folder) ? o.slice(folder.length) : o);
}

function messagesTable(messages, folder) {
  const sorted = [...messages].sort((a, b) => (LEVELS[a.level] ?? 3) - (LEVELS[b.level] ?? 3)
    || String(a.resource).localeCompare(String(b.resource)));
  return table([
    ['Level', (m) => h('span', { class: `level level-${String(m.level).toLowerCase()}` }, m.level)],
    ['Code', (m) => m.code || '–'],
    ['Resource', (m) => m.resource || '–'],
    ['Where', (m) => origin(m.origin, folder)],
    ['Message', (m) => h('span', {}, m.message, m.field ? h('span', { class: 'muted' }, ` (field ${m.field})`) : null)],
  ], sorted, {
    id: 'messages-table', empty: 'No validation or analyzer messages: the configuration is clean.',
    rowAttrs: (m) => ({ dataset: { level: m.level, code: m.code || '' } }),
  });
}

function resourcesTable(resources, folder) {
  const sorted = [...resources].sort((a, b) =>
    `${a.kind}/${a.namespace}/${a.name}`.localeCompare(`${b.kind}/${b.namespace}/${b.name}`));
  return table([
    ['Kind', (r) => r.kind],
    ['Name', (r) => h('strong', {}, r.name)],
    ['Namespace', (r) => r.namespace || '–'],
    ['API version', (r) => h('span', { class: 'muted' }, r.apiVersion || '')],
    ['Origin', (r) => origin(r.origin, folder)],
  ], sorted, {
    id: 'resources-table', empty: 'No resources match.',
    rowAttrs: (r) => ({ dataset: { kind: r.kind, name: r.name, namespace: r.namespace || '' } }),
  });
}

function counts(messages) {
  const n = (level) => messages.filter((m) => m.level === level).length;
  const plural = (k, word) => `${k} ${word}${k === 1 ? '' : 's'}`;
  return h('span', { id: 'message-counts' },
    h('span', { class: n('Error') ? 'level level-error' : 'muted' }, plural(n('Error'), 'error')), ' · ',
    h('span', { class: n('Warning') ? 'level level-warning' : 'muted' }, plural(n('Warning'), 'warning')), ' · ',
    h('span', { class: 'muted' }, plural(n('Info'), 'info message')));
}

/** The configuration view. */
export function configView(params) {
  const filter = h('input', {
    type: 'search', id: 'config-filter', placeholder: 'Filter by kind, name, code, file…',
    value: params[0] ? decodeURIComponent(params[0]) : '',
  });
  const body = h('div', {}, h('p', { class: 'muted loading' }, 'Loading configuration…'));
  const generation = h('span', { class: 'muted', id: 'config-generation' });
  const el = h('section', { class: 'view', id: 'config-view' },
    h('div', { class: 'view-head' }, h('h2', {}, 'Istio configuration'), generation, h('span', { class: 'spacer' }), filter),
    body);
  let data = null;
  function render() {
    if (!data) return;
    const f = filter.value.trim();
    const messages = (data.messages || []).filter((m) => matches(f, m.code, m.level, m.resource, m.origin, m.message, m.field));
    const resources = (data.resources || []).filter((r) => matches(f, r.kind, r.namespace, r.name, r.origin, `${r.kind} ${r.namespace}/${r.name}`));
    const folder = commonFolder([...(data.resources || []), ...(data.messages || [])].map((x) => x.origin));
    generation.textContent = `generation ${data.generation ?? '?'} · ${(data.resources || []).length} resources${folder ? ` · files under ${folder}` : ''}`;
    body.replaceChildren(
      h('h3', {}, 'Validation and analysis ', counts(data.messages || [])), messagesTable(messages, folder),
      h('h3', {}, 'Resources'), resourcesTable(resources, folder));
  }
  filter.addEventListener('input', render);
  async function load() {
    try { data = await getJson('/api/config'); } catch { loadFailed(body, 'the configuration'); return; }
    render();
  }
  load();
  return { el, refresh: (kind) => { if (kind === 'config') load(); } };
}
