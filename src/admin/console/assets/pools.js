// Pool cards (each backend's health, in-flight, draining / ejected / slow
// start, and its drain button), the extension panels, and the history as a
// timeline.

import { $, clock, h, keyed, splitText, swatch } from './dom.js';
import { EXTENSIONS } from './extensions.js';
import { eventKey } from './releases.js';

export function renderPools(ctx) {
  // States the status leaves out (ejected, slow start, probe failure), by pool/addr.
  const extra = new Map(((ctx.traffic && ctx.traffic.backends) || []).map((b) => [`${b.pool}/${b.addr}`, b]));
  const more = (pool, b) => extra.get(`${pool}/${b.addr}`) || {};
  keyed($('#pool-list'), ctx.status.pools || [], (p) => p.name,
    (p) => h('article', { class: 'card pool', data: { pool: p.name } },
      h('header', {}, h('h3', {}, swatch(p.name), p.name), h('span', { class: 'summary muted' })),
      h('table', {},
        h('thead', {}, h('tr', {}, ['backend', 'health', 'in flight', 'state', ''].map((t) => h('th', { text: t })))),
        h('tbody'))),
    (el, p) => {
      const up = p.backends.filter((b) => b.health === 'healthy' && !b.draining && !more(p.name, b).ejected).length;
      $('.summary', el).textContent = `${up}/${p.backends.length} in service`;
      keyed($('tbody', el), p.backends, (b) => b.addr, (b) => createBackend(p.name, b),
        (tr, b) => updateBackend(tr, b, more(p.name, b)));
    });
}

function createBackend(pool, b) {
  return h('tr', { data: { backend: `${pool}/${b.addr}` } },
    h('td', {}, h('code', { text: b.addr })),
    h('td', { class: 'health' }),
    h('td', { class: 'num inflight' }),
    h('td', { class: 'state' }),
    h('td', {}, h('button', { type: 'button', class: 'quiet', data: { action: 'drain', pool, addr: b.addr } }, 'Drain')));
}

function updateBackend(tr, b, x) {
  const health = $('.health', tr);
  health.replaceChildren(h('span', { class: 'dot', data: { health: b.health } }), b.health);
  health.title = x.probe_failure ? 'last probe: ' + x.probe_failure : '';
  $('.inflight', tr).textContent = b.in_flight;
  const states = [];
  if (b.draining) states.push(h('span', { class: 'chip warn' }, 'draining'));
  if (x.ejected) states.push(h('span', { class: 'chip bad' }, 'ejected'));
  if (x.slow_start_percent != null) states.push(h('span', { class: 'chip' }, `slow start ${Math.round(x.slow_start_percent)}%`));
  if (!states.length) states.push(h('span', { class: 'muted' }, 'in rotation'));
  $('.state', tr).replaceChildren(...states);
  const names = [b.draining && 'draining', x.ejected && 'ejected', x.slow_start_percent != null && 'slow_start'];
  tr.dataset.state = names.filter(Boolean).join(' ') || 'active';
  const btn = $('button', tr);
  btn.dataset.action = b.draining ? 'undrain' : 'drain';
  btn.textContent = b.draining ? 'Undrain' : 'Drain';
}

export function renderPanels(ctx) {
  keyed($('#panels'), EXTENSIONS.panels, (p) => p.id,
    (p) => h('section', { id: p.id }, h('h2', { text: p.title }), h('div', { class: 'body' })),
    (el, p) => {
      const body = p.render(ctx);
      el.hidden = !body;
      $('.body', el).replaceChildren(...(body ? [body] : []));
    });
}

export function renderHistory(ctx) {
  keyed($('#timeline'), ctx.history, eventKey, () => h('li'), (li, e) => {
    if (li.dataset.drawn) return; // an event never changes
    li.dataset.drawn = '1';
    li.dataset.action = e.action;
    const bad = e.result === 'rejected' || /rollback|reverted|unverified|cancelled/.test(e.action);
    const good = /promote|verified$/.test(e.action) && e.action !== 'flip_unverified';
    li.dataset.class = bad ? 'bad' : good ? 'good' : /rollout|flip/.test(e.action) ? 'release' : 'plain';
    const what = e.route ? `route ${e.route}` : e.backend ? `backend ${e.backend}` : '';
    li.append(...[
      h('time', { datetime: e.time, text: clock(e.time) }),
      h('span', { class: 'what', text: e.action }),
      h('span', { text: what }),
      e.old_split || e.new_split ? h('span', { class: 'muted', text: `  ${splitText(e.old_split)} → ${splitText(e.new_split)}` }) : null,
      h('span', { class: 'muted', text: `  by ${e.source}, gen ${e.generation}` }),
      e.result !== 'applied' ? h('span', { class: 'chip' + (e.result === 'rejected' ? ' bad' : ''), text: e.result }) : null,
      e.persisted === false ? h('span', { class: 'chip warn', text: 'not written to the file' }) : null,
      e.detail ? h('span', { class: 'detail', text: e.detail }) : null,
    ].filter(Boolean));
  });
}
