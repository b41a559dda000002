// switchyard console: polls the admin API once a second and draws routes,
// releases (rollouts, verified flips), pools and the history; actions go
// through the same API with If-Match and show its errors. No framework and
// no build step: these modules are embedded in the binary as they are.
//
//   api.js         the API client (token, If-Match) and the latest answers
//   dom.js         element builders, in-place updates, formatting, sparklines
//   routes.js      route cards: split bar, settings, per-pool figures
//   releases.js    rollout and verified-flip cards with threshold charts
//   pools.js       pools and backends, extension panels, history timeline
//   actions.js     the confirmed actions
//   shadow.js      the shadow traffic panel (windows, mismatch samples)
//   extensions.js  where later work plugs in (standby, shadow, cluster)
//
// This module: the login form (token in sessionStorage) and the refresh loop.

import { $ } from './dom.js';
import { api, store, token } from './api.js';
import { initActions } from './actions.js';
import { renderRoutes } from './routes.js';
import { renderReleases } from './releases.js';
import { renderHistory, renderPanels, renderPools } from './pools.js';

const POLL_MS = 1000;

const loop = { timer: null, running: false, again: false, on: false };

function setLive(kind, text) {
  const el = $('#live');
  el.dataset.state = kind;
  el.textContent = text;
}

function showLogin(message) {
  loop.on = false;
  clearTimeout(loop.timer);
  $('#app').hidden = true;
  $('#login').hidden = false;
  $('#logout').hidden = true;
  $('#login-error').textContent = message || '';
  setLive('locked', 'token needed');
  $('#token').focus();
}

async function login(ev) {
  ev.preventDefault();
  const given = $('#token').value.trim();
  if (!given) return;
  token.set(given);
  try {
    await api('GET', '/api/v1/status');
  } catch (e) {
    if (e.status === 401) {
      token.clear();
      $('#login-error').textContent = 'The token was refused (401). Check the value of the variable '
        + 'or file named by [admin] token_env / token_file.';
    } else {
      $('#login-error').textContent = 'The admin API did not answer: ' + e.message;
    }
    return;
  }
  $('#token').value = '';
  start();
}

function start() {
  loop.on = true;
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#logout').hidden = !token.get();
  refresh();
}

/** Reads the API now; a call made while one runs makes it read again after. */
async function refresh() {
  if (loop.running) { loop.again = true; return; }
  loop.running = true;
  clearTimeout(loop.timer);
  try {
    const [status, traffic, history] = await Promise.all([
      api('GET', '/api/v1/status'),
      api('GET', '/api/v1/traffic'),
      api('GET', '/api/v1/history?limit=60'),
    ]);
    Object.assign(store, { status, traffic, history: history.events || [], generation: status.generation });
    render();
    setLive('live', 'live');
  } catch (e) {
    if (e.status === 401) {
      const had = !!token.get();
      token.clear();
      loop.running = false;
      showLogin(had ? 'The token is no longer accepted; log in again.' : '');
      return;
    }
    setLive('offline', 'offline: ' + (e.message || 'no answer') + ' (retrying)');
  }
  loop.running = false;
  if (loop.again) { loop.again = false; refresh(); return; }
  if (loop.on) loop.timer = setTimeout(refresh, POLL_MS);
}

function render() {
  const gen = $('#generation');
  gen.textContent = 'generation ' + store.status.generation;
  gen.dataset.generation = store.status.generation;
  const ctx = { status: store.status, traffic: store.traffic, history: store.history };
  renderRoutes(ctx);
  renderReleases(ctx);
  renderPools(ctx);
  renderPanels(ctx);
  renderHistory(ctx);
}

$('#login').addEventListener('submit', login);
$('#logout').addEventListener('click', () => { token.clear(); showLogin('Logged out.'); });
$('#banner-close').addEventListener('click', () => { $('#banner').hidden = true; });
initActions(refresh);
start();
