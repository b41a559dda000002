// The admin API client and what the page last read from it. Every call is
// same-origin (relative URLs, no credentials mode), carries the bearer
// token from sessionStorage (never a cookie), and every mutation is JSON
// with `Content-Type: application/json` and `If-Match: <generation shown>`,
// so the admin listener's CSRF and DNS-rebinding guards apply unchanged.

const TOKEN_KEY = 'switchyard.token';

/** The latest answers; replaced whole by each poll. */
export const store = {
  status: null,
  traffic: null,
  history: [],
  /** The generation the page shows: sent as If-Match. */
  generation: null,
  /** Server clock minus ours (ms), from the Date header. */
  clockOffset: 0,
};

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (t) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export const serverNow = () => Date.now() + store.clockOffset;

/** A refused call: HTTP status, the API's error code and detail. */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(`${status} ${code || ''}${detail ? ': ' + detail : ''}`.trim());
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/** One call; answers the JSON body or throws ApiError. */
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const t = token.get();
  if (t) headers.Authorization = 'Bearer ' + t;
  const init = { method, headers, credentials: 'omit', cache: 'no-store', redirect: 'error' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    if (store.generation != null) headers['If-Match'] = String(store.generation);
    init.body = JSON.stringify(body ?? {});
  }
  const r = await fetch(path, init);
  const date = Date.parse(r.headers.get('Date') || '');
  if (!isNaN(date)) store.clockOffset = date - Date.now();
  let data = null;
  try { data = await r.json(); } catch (_) { /* not JSON: the status says enough */ }
  if (!r.ok) throw new ApiError(r.status, data && data.error, data && data.detail);
  return data;
}

export const routePath = (r) => `/api/v1/routes/${encodeURIComponent(r)}`;
