// Extension points of the console, for work that lands after it:
//
// - `route`: functions (route from the status, route from /api/v1/traffic,
//   ctx) => Node | null, each shown on the route's card;
// - `panels`: {id, title, render(ctx) => Node | null}, a section each,
//   hidden while render answers null.
//
// ctx is {status, traffic, history}: the latest answers of the API. The
// built-in entries show a route's standby pool (issue #14) and the cluster's
// members (issue #13) generically, as soon as the API carries them; each
// issue can replace its entry with a richer one. Shadow traffic (issue #15)
// has its own panel (`shadow.js`).

import { h, kv, swatch } from './dom.js';
import { shadowPanel } from './shadow.js';

/**
 * A route's standby pool: `standby` ("pool" or {pool, ...}) on the route,
 * and `standby_active` while it takes the route's traffic.
 */
function standbyRow(r, t) {
  const standby = r.standby ?? t.standby;
  if (standby == null) return null;
  const name = typeof standby === 'string' ? standby : standby.pool;
  const more = typeof standby === 'object' ? kv(standby) : null;
  const serving = r.standby_active ? h('strong', { class: 'standby-serving' }, ' serving the route') : null;
  return h('div', { class: 'standby', data: { standby: name } }, 'standby pool: ', swatch(name), name, serving, more);
}

/** The cluster's members: `cluster.members` (objects) in the status, one row each. */
function clusterPanel(ctx) {
  const members = ctx.status.cluster && ctx.status.cluster.members;
  if (!Array.isArray(members) || !members.length) return null;
  const cols = [...new Set(members.flatMap((m) => Object.keys(m)))];
  const cell = (v) => (v == null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  return h('div', { class: 'card' }, h('table', {},
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', { text: c.replace(/_/g, ' ') })))),
    h('tbody', {}, members.map((m) => h('tr', {}, cols.map((c) => h('td', { text: cell(m[c]) })))))));
}

export const EXTENSIONS = {
  route: [standbyRow],
  panels: [
    { id: 'shadow', title: 'Shadow traffic', render: shadowPanel },
    { id: 'cluster', title: 'Cluster members', render: clusterPanel },
  ],
};
