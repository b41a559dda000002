// Route cards: the split as a bar, the route's settings, per-pool figures
// with sparklines, the extension rows, and the route's action buttons
// (handled by actions.js through one delegated listener).

import { $, color, h, keyed, ms, pct, rps, spark, splitText, swatch } from './dom.js';
import { EXTENSIONS } from './extensions.js';

/** The route's entry of /api/v1/traffic (pools, settings). */
export function trafficRoute(traffic, name) {
  return ((traffic && traffic.routes) || []).find((r) => r.name === name) || { pools: [] };
}

export function renderRoutes(ctx) {
  keyed($('#route-list'), ctx.status.routes || [], (r) => r.name, createRoute, (el, r) => updateRoute(el, r, ctx));
}

function createRoute(r) {
  const button = (action, label, cls) => h('button', { type: 'button', class: cls, data: { action } }, label);
  return h('article', { class: 'card route', data: { route: r.name } },
    h('header', {}, h('h3', { text: r.name }), h('code', { class: 'prefix muted' }), h('span', { class: 'chips' })),
    h('div', { class: 'splitbar', role: 'img' }),
    h('table', { class: 'pools' },
      h('thead', {}, h('tr', {}, ['pool', 'weight', 'req/s', 'errors', 'p99'].map((t) => h('th', { text: t })))),
      h('tbody')),
    h('div', { class: 'extras' }),
    h('div', { class: 'actions' },
      button('flip', 'Flip…'),
      button('split', 'Split…', 'quiet'),
      button('rollback', 'Roll back', 'quiet'),
      button('rollout-start', 'Start rollout…', 'quiet')));
}

function settings(t, running) {
  const chips = [];
  if (t.sticky) {
    const keys = [t.sticky.header && 'header ' + t.sticky.header, t.sticky.cookie && 'cookie ' + t.sticky.cookie];
    chips.push(h('span', { class: 'chip', title: 'sticky key' }, 'sticky: ' + keys.filter(Boolean).join(', ')));
  }
  if (t.force_header) {
    chips.push(h('span', { class: 'chip', title: 'a request naming a pool in this header goes there' }, 'force: ' + t.force_header));
  }
  chips.push(h('span', { class: 'chip' + (t.failover === false ? ' warn' : '') }, t.failover === false ? 'no failover' : 'failover'));
  if (running) chips.push(h('span', { class: 'chip ok' }, 'rollout ' + running.phase));
  return chips;
}

function updateRoute(el, r, ctx) {
  const t = trafficRoute(ctx.traffic, r.name);
  $('.prefix', el).textContent = t.path_prefix || r.path_prefix || '/';
  const running = (ctx.status.rollouts || []).find((x) => x.route === r.name && (x.phase === 'progressing' || x.phase === 'paused'));
  $('.chips', el).replaceChildren(...settings(t, running));

  // The split as a bar: the status's weights, in the order written (traffic).
  const split = r.split || {};
  const order = t.pools.filter((p) => p.weight > 0).map((p) => p.pool);
  for (const p of Object.keys(split)) if (!order.includes(p)) order.push(p);
  const total = order.reduce((a, p) => a + (split[p] || 0), 0) || 1;
  const bar = $('.splitbar', el);
  bar.setAttribute('aria-label', 'split ' + splitText(split));
  keyed(bar, order.filter((p) => split[p] > 0), (p) => p, (p) => h('div', { class: 'seg', data: { pool: p } }), (seg, p) => {
    const w = split[p];
    seg.dataset.weight = w;
    seg.style.width = (100 * w / total) + '%';
    seg.style.background = color(p);
    seg.textContent = `${p} ${Math.round(100 * w / total)}%`;
    seg.title = `${p}: weight ${w}`;
  });

  // Per-pool figures over the last seconds, with sparklines of the series.
  keyed($('tbody', el), t.pools, (p) => p.pool, (p) => h('tr', { data: { pool: p.pool } }), (tr, p) => {
    const sr = p.series || { requests: [], failures: [], p99_ms: [] };
    const errs = sr.requests.map((n, i) => (n ? sr.failures[i] / n : 0));
    const figure = (cls, text, line) => h('td', { class: 'num' }, h('span', { class: 'fig ' + cls, text }), line);
    tr.replaceChildren(
      h('td', { class: 'name' }, swatch(p.pool), p.pool),
      h('td', { class: 'num weight', text: split[p.pool] ?? 0 }),
      figure('rps', rps(p.requests_per_second), spark(sr.requests, color(p.pool))),
      figure('errors' + (p.error_rate > 0 ? ' error' : ''), pct(p.error_rate), spark(errs, '#c53030', 0.05)),
      figure('p99', ms(p.p99_seconds), spark(sr.p99_ms.map((v) => v || 0), '#667085')));
  });

  $('.extras', el).replaceChildren(...EXTENSIONS.route.map((fn) => fn(r, t, ctx)).filter(Boolean));
  const start = $('[data-action="rollout-start"]', el);
  start.hidden = !t.rollout;
  start.disabled = !!running;
}
