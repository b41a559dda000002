// Release cards: a rollout (its steps as a progress line, the step's window
// against the thresholds, time to the next check, the verdicts so far and
// its operator buttons) and a verified flip (its window, the same charts,
// the verdict). The charts plot the window's figures as they were at each
// refresh since the step (or the flip) began, with the limit drawn.

import { $, clock, count, h, keyed, ms, pct, s, secs, splitText } from './dom.js';
import { serverNow } from './api.js';

/** Chart samples by release window; windows that are over are dropped. */
const samples = new Map();

export function renderReleases(ctx) {
  const items = [
    ...(ctx.status.rollouts || []).map((x) => ({ kind: 'rollout', key: 'rollout:' + x.route, v: x })),
    ...(ctx.status.flips || []).map((x) => ({ kind: 'flip', key: 'flip:' + x.route, v: x })),
  ];
  $('#releases').hidden = items.length === 0;
  keyed($('#release-list'), items, (i) => i.key,
    (i) => (i.kind === 'rollout' ? createRollout(i.v) : createFlip(i.v)),
    (el, i) => (i.kind === 'rollout' ? updateRollout(el, i.v, ctx) : updateFlip(el, i.v, ctx)));
}

function card(kind, x, title, extra, buttons) {
  return h('article', { class: 'card ' + kind, data: { [kind]: x.route } },
    h('header', {}, h('h3', {}, title + ' ', h('span', { text: x.route })), h('span', { class: 'phase' }), h('span', { class: 'who muted' })),
    extra,
    h('div', { class: 'facts' }),
    h('div', { class: 'charts' }),
    h('p', { class: 'reason' }),
    h('ol', { class: 'verdicts' }),
    buttons);
}

function createRollout(x) {
  const button = (verb, label, cls) => h('button', { type: 'button', class: cls, data: { action: 'rollout-' + verb } }, label);
  return card('rollout', x, 'Rollout', h('div', { class: 'steps' }), h('div', { class: 'actions' },
    button('pause', 'Pause', 'quiet'), button('resume', 'Resume', 'quiet'),
    button('promote', 'Promote'), button('abort', 'Abort', 'danger')));
}

function createFlip(x) {
  return card('flip', x, 'Verified flip', h('div', { class: 'progress' }, h('b')));
}

/**
 * What both kinds share: phase, the charts of the window, the reason and
 * the release's events from the history (`first` starts the release).
 */
function updateWindow(el, x, ctx, w) {
  el.dataset.phase = x.phase;
  const phase = $('.phase', el);
  phase.dataset.phase = x.phase;
  phase.textContent = x.phase.replace('_', ' ');
  $('.who', el).textContent = w.who;
  $('.facts', el).replaceChildren(...w.facts);
  const list = sample(w.key, w.family, w.point);
  const series = (f) => list.map((p) => [p.t, p[f]]);
  $('.charts', el).replaceChildren(
    chart(w.requestsTitle, series('req'), w.xmax, { min: w.limits.min_requests }, count),
    chart('error rate', series('err'), w.xmax, { max: w.limits.max_error_rate }, pct),
    chart('p99', series('p99'), w.xmax, { max: w.limits.max_p99_seconds }, ms));
  const reason = $('.reason', el);
  reason.textContent = x.reason || '';
  reason.className = 'reason' + (w.bad ? ' error' : '');
  const prefix = w.first.split('_')[0] + '_';
  const events = releaseEvents(ctx.history, x.route, w.first, (e) => e.action.startsWith(prefix));
  keyed($('.verdicts', el), events, eventKey, () => h('li'), (li, e) => {
    li.dataset.action = e.action;
    li.replaceChildren(h('time', { text: clock(e.time) }), ' ', h('strong', { text: e.action.replace(prefix, '') }), e.detail ? ': ' + e.detail : '');
  });
}

function updateRollout(el, x, ctx) {
  el.dataset.step = x.step;
  const into = Math.max(0, x.now_ms - x.step_started_ms);
  const interval = x.step_interval_ms || 1;
  const active = x.phase === 'progressing' || x.phase === 'paused';
  $('.steps', el).replaceChildren(...progressLine(x));
  let next = x.phase.replace('_', ' ');
  if (x.phase === 'progressing') next = into < interval ? 'next check in ' + secs(interval - into) : 'judging';
  const facts = [
    h('span', {}, `step ${x.step + 1}/${x.steps.length}`),
    h('span', {}, `${x.canary_weight}% on ${x.canary}`),
    h('span', { class: 'next' }, next),
  ];
  if (x.last) facts.push(h('span', { class: 'muted' }, 'last check: ' + describeCheck(x.last.check)));
  const cur = x.current || {};
  updateWindow(el, x, ctx, {
    who: `${x.canary} replacing ${x.stable}`,
    facts,
    key: `rollout:${x.route}:${x.step}:${x.step_started_ms}`,
    family: `rollout:${x.route}:`,
    point: active && x.current ? { t: into, req: cur.canary_requests || 0, err: cur.canary_error_rate || 0, p99: cur.canary_p99_seconds } : null,
    xmax: Math.max(interval, into),
    requestsTitle: 'canary requests',
    limits: { ...(x.thresholds || {}) },
    bad: x.phase === 'rolled_back',
    first: 'rollout_start',
  });
  const can = { pause: x.phase === 'progressing', resume: x.phase === 'paused', promote: active, abort: active };
  for (const [verb, ok] of Object.entries(can)) $(`[data-action="rollout-${verb}"]`, el).disabled = !ok;
}

/** The steps as nodes joined by links, filled up to the current step. */
function progressLine(x) {
  const nodes = [];
  x.steps.forEach((p, i) => {
    if (i > 0) {
      const link = h('span', { class: 'link' }, h('b'));
      link.firstChild.style.width = (i <= x.step || x.phase === 'promoted' ? 100 : 0) + '%';
      nodes.push(link);
    }
    let st = i < x.step ? 'done' : i === x.step ? 'current' : 'todo';
    if (x.phase === 'promoted') st = 'done';
    if (x.phase === 'rolled_back' && i === x.step) st = 'failed';
    nodes.push(h('span', { class: 'step', data: { state: st, index: i } }, h('i'), p + '%'));
  });
  return nodes;
}

function describeCheck(c) {
  if (!c) return '–';
  if (c.result === 'pass') return 'pass';
  if (c.result === 'fail') return `fail (${c.metric} ${c.value.toFixed(4)} > ${c.limit.toFixed(4)})`;
  if (c.result === 'insufficient') return `waiting for traffic (${c.requests}/${c.needed})`;
  return c.result;
}

function updateFlip(el, x, ctx) {
  const into = Math.max(0, serverNow() - x.started_ms);
  const done = x.phase !== 'verifying';
  $('.progress b', el).style.width = (done ? 100 : Math.min(100, 100 * into / (x.window_ms || 1))) + '%';
  updateWindow(el, x, ctx, {
    who: `to ${x.to}, from ${splitText(x.previous_split)}`,
    facts: [
      h('span', {}, `window ${ms(x.window_ms / 1000)}`),
      h('span', {}, done ? 'finished' : 'ends in ' + secs(x.window_ms - into)),
      h('span', {}, `${x.requests} requests to ${x.to}`),
    ],
    key: `flip:${x.route}:${x.generation}`,
    family: `flip:${x.route}:`,
    point: done ? null : { t: Math.min(into, x.window_ms), req: x.requests, err: x.error_rate, p99: x.p99_seconds },
    xmax: x.window_ms,
    requestsTitle: 'requests',
    limits: x,
    bad: x.phase === 'reverted',
    first: 'flip_verify',
  });
}

/** The route's events since the newest `first` one, oldest first. */
function releaseEvents(history, route, first, match) {
  const out = [];
  for (const e of history) {
    if (e.route !== route || !match(e)) continue;
    out.push(e);
    if (e.action === first) break;
  }
  return out.reverse();
}

export const eventKey = (e) => `${e.time}|${e.action}|${e.generation}`;

/** Adds one point to the window `key`, dropping the family's older windows. */
function sample(key, family, point) {
  for (const k of samples.keys()) if (k.startsWith(family) && k !== key) samples.delete(k);
  let list = samples.get(key);
  if (!list) { list = []; samples.set(key, list); }
  if (point && (!list.length || list[list.length - 1].t !== point.t)) list.push(point);
  if (list.length > 900) list.splice(0, list.length - 900);
  return list;
}

/** A line chart of one measure over the window, with its limit drawn. */
function chart(title, points, xmax, limit, fmt) {
  const W = 180, H = 80, L = 4, B = 14;
  const vals = points.map((p) => p[1]).filter((v) => v != null);
  const lim = limit.max ?? limit.min;
  const ymax = Math.max(lim != null ? lim * 1.5 : 0, ...vals, 1e-9);
  const X = (t) => L + (W - L - 4) * Math.min(1, t / (xmax || 1));
  const Y = (v) => H - B - (H - B - 6) * (v / ymax);
  const svg = s('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
  svg.append(s('line', { x1: L, x2: W - 4, y1: H - B, y2: H - B, stroke: 'currentColor', 'stroke-opacity': 0.25 }));
  if (lim != null) {
    svg.append(s('line', { class: limit.max != null ? 'limit' : 'minline', x1: L, x2: W - 4, y1: Y(lim), y2: Y(lim) }));
    svg.append(s('text', { x: W - 6, y: Y(lim) - 3, 'text-anchor': 'end' }, (limit.max != null ? 'max ' : 'min ') + fmt(lim)));
  }
  const line = points.filter((p) => p[1] != null);
  if (line.length) {
    svg.append(s('polyline', { points: line.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(' ') }));
    const [t, v] = line[line.length - 1];
    svg.append(s('circle', { class: 'now', cx: X(t).toFixed(1), cy: Y(v).toFixed(1), r: 2.5 }));
  }
  svg.append(s('text', { x: L, y: H - 2 }, '0'), s('text', { x: W - 4, y: H - 2, 'text-anchor': 'end' }, secs(xmax)));
  const last = vals.length ? vals[vals.length - 1] : null;
  const over = last != null && limit.max != null && last > limit.max;
  return h('figure', { class: 'chart', data: { chart: title } },
    h('figcaption', {}, title + ': ', h('strong', { class: over ? 'error' : '', text: last == null ? '–' : fmt(last) })), svg);
}
