// DOM and formatting helpers of the console. Elements are built with
// createElement/textContent only (never innerHTML), so names from the
// configuration or the history can never become markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An HTML element: attrs (class, text, data, on, others), then children. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'data') for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = dv;
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v != null) el.setAttribute(k, String(v));
  for (const c of children) if (c != null) el.append(c instanceof Node ? c : String(c));
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

/**
 * Keeps one child of `parent` per item (by key): created once, updated in
 * place and reordered, so buttons, inputs and focus survive every refresh.
 */
export function keyed(parent, items, keyOf, create, update) {
  const old = new Map([...parent.children].map((el) => [el.dataset.key, el]));
  let prev = null;
  for (const item of items) {
    const k = String(keyOf(item));
    let el = old.get(k);
    if (el) old.delete(k);
    else { el = create(item); el.dataset.key = k; }
    update(el, item);
    const want = prev ? prev.nextSibling : parent.firstChild;
    if (el !== want) parent.insertBefore(el, want);
    prev = el;
  }
  for (const el of old.values()) el.remove();
}

// ---- formatting -------------------------------------------------------------
export const pct = (r) => (r == null ? '–' : (r * 100).toFixed(r >= 0.1 ? 1 : 2) + '%');
export const ms = (sec) => (sec == null ? '–' : sec < 1 ? Math.round(sec * 1000) + ' ms' : sec.toFixed(2) + ' s');
export const rps = (n) => (n >= 100 ? Math.round(n) : n.toFixed(1)) + '/s';
export const secs = (msv) => Math.max(0, Math.ceil(msv / 1000)) + 's';
export const count = (v) => String(Math.round(v));
export const splitText = (split) => Object.entries(split || {}).map(([p, w]) => `${p}=${w}`).join(' ');
export function clock(iso) {
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleTimeString([], { hour12: false });
}

// ---- pools' colours, sparklines, key-value lists -------------------------------------
const KNOWN = { blue: '#2f6fdf', green: '#2e9d5b', canary: '#d49a00', red: '#d64545', stable: '#5b6bd6' };
const PALETTE = ['#7b5cd6', '#d1558f', '#1f9fb3', '#8a6d3b', '#5f7f1f', '#c2612b', '#4f6d8f', '#b04fc0'];

/** A pool's colour: its name's when it names one, else a stable pick. */
export function color(pool) {
  if (KNOWN[pool]) return KNOWN[pool];
  let x = 0;
  for (const ch of pool) x = (x * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[x % PALETTE.length];
}

export function swatch(pool) {
  const el = h('span', { class: 'swatch' });
  el.style.background = color(pool); // CSSOM, which the CSP allows (no style attribute)
  return el;
}

/** A sparkline of the last seconds (oldest left). */
export function spark(values, stroke, floorMax) {
  const W = 64, H = 20;
  const max = Math.max(floorMax || 1, ...values);
  const n = Math.max(values.length - 1, 1);
  const pts = values.map((v, i) => `${(i * W / n).toFixed(1)},${(H - 1 - (v / max) * (H - 2)).toFixed(1)}`).join(' ');
  return s('svg', { class: 'spark', width: W, height: H, viewBox: `0 0 ${W} ${H}`, 'aria-hidden': 'true' },
    s('polyline', { points: pts, stroke }));
}

/** Every field of an object, as a two-column list. */
export function kv(obj) {
  return h('div', { class: 'kv' }, Object.entries(obj).flatMap(([k, v]) => [
    h('span', { class: 'muted', text: k.replace(/_/g, ' ') }),
    h('span', { text: typeof v === 'object' ? JSON.stringify(v) : String(v) })]));
}
