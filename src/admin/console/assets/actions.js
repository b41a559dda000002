// The console's actions, each behind a modal confirmation: flip (optionally
// verified), split, rollback, rollout start / pause / resume / promote /
// abort, drain / undrain. Each is one API call (with If-Match, see api.js);
// its outcome or the API's error is shown in the banner.

import { $, h, ms, splitText, swatch } from './dom.js';
import { api, routePath, store } from './api.js';
import { trafficRoute } from './routes.js';

export function banner(kind, text) {
  const b = $('#banner');
  b.dataset.kind = kind;
  $('#banner-text').textContent = text;
  b.hidden = false;
}

/** A modal confirmation; resolves true on Confirm. */
function ask(title, text, body, okLabel, danger) {
  const d = $('#confirm');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-body').replaceChildren(...(body ? [body] : []));
  const ok = $('#confirm-ok');
  ok.textContent = okLabel || 'Confirm';
  ok.className = danger ? 'danger' : '';
  return new Promise((resolve) => {
    const done = (v) => () => { d.close(); resolve(v); };
    const no = done(false);
    ok.onclick = done(true);
    $('#confirm-cancel').onclick = no;
    d.oncancel = (ev) => { ev.preventDefault(); no(); };
    d.showModal();
    ((body && body.querySelector('input, select')) || ok).focus();
  });
}

const capital = (w) => w[0].toUpperCase() + w.slice(1);

/** Wires the buttons (one delegated listener: cards are updated in place). */
export function initActions(refresh) {
  async function act(label, method, path, body) {
    try {
      const a = await api(method, path, body);
      let msg = `${label}: done`;
      if (a && a.generation != null) msg += `, generation ${a.generation}`;
      if (a && a.persisted === false) {
        msg += ' (in memory only: NOT written to the file';
        msg += a.persist_error ? `: ${a.persist_error})` : ')';
        msg += '; it is written on top of the file at its next successful reload';
      }
      else if (a && a.persisted) msg += ', written to the file';
      if (a && a.changed === false) msg += ' (nothing changed)';
      banner('ok', msg);
    } catch (e) {
      const hint = e.code === 'generation_mismatch'
        ? ' (the state changed since this page last refreshed: look again, then retry)' : '';
      banner('error', `${label} refused: ${e.message}${hint}`);
    }
    refresh();
  }

  const handlers = {
    async flip(route) {
      const pools = (store.status.pools || []).map((p) => p.name);
      const current = routeSplit(route);
      const sel = h('select', { id: 'flip-to' }, pools.map((p) => h('option', { value: p, text: p })));
      sel.value = pools.find((p) => !(current[p] > 0)) || pools[0];
      const verify = h('input', { id: 'flip-verify', type: 'text', placeholder: 'e.g. 30s', size: 8 });
      const body = h('div', {},
        h('label', {}, 'all traffic to', sel),
        h('label', {}, 'verify for', verify, h('span', { class: 'muted' }, '(optional: switch back by itself if it fails)')));
      if (!(await ask(`Flip route ${route}`, `Now: ${splitText(current)}.`, body, 'Flip'))) return;
      const req = { to: sel.value };
      if (verify.value.trim()) req.verify = { window: verify.value.trim() };
      await act(`flip ${route} → ${sel.value}`, 'POST', routePath(route) + '/flip', req);
    },
    async split(route) {
      const current = routeSplit(route);
      const listed = trafficRoute(store.traffic, route).pools.map((p) => p.pool);
      const all = (store.status.pools || []).map((p) => p.name);
      const names = [...new Set([...listed, ...Object.keys(current), ...all])];
      const inputs = names.map((p) => h('input', { type: 'number', min: 0, step: 1, value: current[p] || 0, data: { pool: p } }));
      const body = h('div', { class: 'split-form' }, names.map((p, i) => h('label', {}, swatch(p), h('span', { text: p }), inputs[i])));
      if (!(await ask(`Set the split of ${route}`, 'Weights are relative; pools left at 0 get nothing.', body, 'Apply'))) return;
      // Pools not in the route and left at 0 are not sent (the file is not
      // given `pool = 0` entries for them). A value that is not a whole
      // number goes as typed, and the API says why it is refused.
      const split = {};
      names.forEach((p, i) => {
        const w = Number(inputs[i].value);
        if (w > 0 || listed.includes(p) || p in current) split[p] = Number.isInteger(w) && w >= 0 ? w : inputs[i].value;
      });
      await act(`split ${route}`, 'PUT', routePath(route) + '/split', split);
    },
    async rollback(route) {
      if (!(await ask(`Roll back route ${route}`, 'Restore the split in force before its last change.', null, 'Roll back', true))) return;
      await act(`rollback ${route}`, 'POST', routePath(route) + '/rollback');
    },
    async 'rollout-start'(route) {
      const plan = trafficRoute(store.traffic, route).rollout || {};
      const text = `${plan.canary} replaces ${plan.stable} in steps ${(plan.steps || []).join(' → ')} %, `
        + `each judged after ${ms((plan.step_interval_ms || 0) / 1000)}.`;
      if (!(await ask(`Start the rollout of ${route}`, text, null, 'Start'))) return;
      await act(`rollout start ${route}`, 'POST', routePath(route) + '/rollout/start');
    },
    async drain(_, btn) { await backend('drain', btn); },
    async undrain(_, btn) { await backend('undrain', btn); },
  };
  const verbs = {
    pause: 'Stop judging; the weights stay as they are.',
    resume: 'Judge again; the current step starts over.',
    promote: 'Skip ahead: 100 % to the canary now.',
    abort: 'Roll back now: 100 % to stable.',
  };
  for (const [verb, text] of Object.entries(verbs)) {
    handlers['rollout-' + verb] = async (route) => {
      if (!(await ask(`${capital(verb)} the rollout of ${route}`, text, null, capital(verb), verb === 'abort'))) return;
      await act(`rollout ${verb} ${route}`, 'POST', `${routePath(route)}/rollout/${verb}`);
    };
  }

  async function backend(action, btn) {
    const { pool, addr } = btn.dataset;
    const text = action === 'drain' ? 'It takes no new requests; requests in flight finish.' : 'It takes requests again.';
    if (!(await ask(`${capital(action)} ${addr} in ${pool}`, text, null, capital(action), action === 'drain'))) return;
    // The address goes as written (IP:port): the API reads the raw path segment.
    await act(`${action} ${pool} ${addr}`, 'POST', `/api/v1/backends/${encodeURIComponent(pool)}/${addr}/${action}`);
  }

  document.addEventListener('click', (ev) => {
    const btn = ev.target.closest('button[data-action]');
    const handler = btn && !btn.disabled && handlers[btn.dataset.action];
    if (!handler) return;
    const card = btn.closest('[data-route], [data-rollout]');
    handler(card && (card.dataset.route || card.dataset.rollout), btn);
  });
}

function routeSplit(route) {
  return ((store.status.routes || []).find((r) => r.name === route) || {}).split || {};
}
