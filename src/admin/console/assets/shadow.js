// The shadow traffic panel (issue #15): per route and mirror pool, the
// shadow window of the last 10 seconds from /api/v1/traffic (copies,
// comparisons, mismatches by kind, mirror errors, dropped copies, both
// sides' p99) and the latest mismatch samples from
// /api/v1/routes/{route}/shadow (request line, both statuses, the diff),
// which the proxy redacted before keeping them. Samples are read every
// few seconds and only for routes with shadow traffic.

import { api, routePath } from './api.js';
import { h, pct, swatch } from './dom.js';

const SAMPLES = 3;
const SAMPLES_EVERY_MS = 2000;

/** route -> {at, pools (the answer's), busy} */
const samples = new Map();

function fetchSamples(route) {
  const now = Date.now();
  const s = samples.get(route) || { at: 0, pools: [], busy: false };
  if (s.busy || now - s.at < SAMPLES_EVERY_MS) return;
  s.busy = true;
  samples.set(route, s);
  api('GET', `${routePath(route)}/shadow?seconds=10&samples=${SAMPLES}`)
    .then((a) => { s.pools = a.pools || []; })
    .catch(() => { /* the next poll asks again; the figures still show */ })
    .finally(() => { s.at = Date.now(); s.busy = false; });
}

const num = (v) => (v == null ? '–' : String(v));
const msText = (v) => (v == null ? '–' : Math.round(v) + ' ms');

function figure(name, label, value, bad) {
  return [h('span', { class: 'muted', text: label }),
    h('span', { class: bad ? 'bad' : null, data: { field: name }, text: value })];
}

function poolCard(route, p) {
  const w = p.window;
  const shares = [p.mirror_percent != null && `mirror ${p.mirror_percent}%`,
    p.step_percent != null && `shadow step ${p.step_percent}%`].filter(Boolean).join(', ');
  const kept = ((samples.get(route) || {}).pools || []).find((q) => q.pool === p.pool);
  const rows = ((kept && kept.samples) || []).map((s) => h('li', { class: 'sample', data: { kind: s.kind } },
    h('code', { text: `${s.method} ${s.target}` }),
    h('span', { class: 'chip' + (Math.floor(s.mirror.status / 100) !== Math.floor(s.primary.status / 100) ? ' bad' : ''),
      text: `${s.primary.status} → ${s.mirror.status} ${s.kind}` }),
    h('ul', { class: 'diff' }, s.diff.map((d) => h('li', {}, h('code', { text: d }))))));
  return h('article', { class: 'card shadow', data: { shadow: `${route}/${p.pool}`, active: String(p.active) } },
    h('header', {}, h('h3', {}, `${route} → `, swatch(p.pool), p.pool),
      h('span', { class: 'chip' + (p.active ? ' ok' : ''), text: p.active ? 'copying' : 'idle' }),
      h('span', { class: 'muted', text: shares })),
    h('div', { class: 'kv' },
      figure('mirrored', 'mirrored', num(w.mirrored)),
      figure('compared', 'compared', num(w.compared)),
      figure('mismatched', 'mismatched', `${w.mismatched} (${pct(w.mismatch_rate)})`, w.mismatched > 0),
      figure('kinds', 'by kind', `status class ${w.mismatched_status_class}, status ${w.mismatched_status}, body ${w.mismatched_body}`),
      figure('errors', 'mirror errors + 5xx', `${w.mirror_errors} + ${w.mirror_5xx} (${pct(w.error_rate)})`, w.error_rate > 0),
      figure('dropped', 'dropped', `in flight ${w.dropped_in_flight}, body too big ${w.dropped_body_too_big}`),
      figure('p99', 'p99 primary / mirror', `${msText(w.primary_p99_ms)} / ${msText(w.mirror_p99_ms)}`
        + (w.p99_latency_ratio == null ? '' : ` (×${w.p99_latency_ratio.toFixed(2)})`))),
    rows.length ? h('ol', { class: 'samples' }, rows) : h('p', { class: 'muted', text: 'no mismatch samples' }));
}

/** The panel's body, or null (hidden) when no route has shadow traffic. */
export function shadowPanel(ctx) {
  const routes = ((ctx.traffic && ctx.traffic.routes) || []).filter((r) => (r.shadow || []).length);
  if (!routes.length) return null;
  routes.forEach((r) => fetchSamples(r.name));
  return h('div', { class: 'grid wide' }, routes.flatMap((r) => r.shadow.map((p) => poolCard(r.name, p))));
}
