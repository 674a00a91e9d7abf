// The fleetca REST API as the admin UI uses it: same-origin fetch with the session cookie,
// the CSRF token on every state-changing request, and problem+json errors as ApiError.

let csrfToken = null;
let onUnauthorized = () => {};

/** Remembers the CSRF token from sign-in or /auth/me (kept in memory only). */
export function setCsrfToken(token) {
  csrfToken = token;
}

/** Called when a request that needs a session gets 401 (the session ended). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** A failed request: the problem's status, detail and field errors. */
export class ApiError extends Error {
  constructor(status, problem = {}, retryAfter = null) {
    super(problem.detail || `The request failed (HTTP ${status}).`);
    this.status = status;
    this.title = problem.title || '';
    this.detail = this.message;
    this.errors = problem.errors || null;
    this.retryAfter = retryAfter;
  }
}

function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

/** Sends a request; resolves to the parsed JSON (null for 204) or rejects with ApiError. */
export async function request(method, path, { body, query, anonymous = false } = {}) {
  const headers = { Accept: 'application/json, application/problem+json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (!['GET', 'HEAD'].includes(method) && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let res;
  try {
    res = await fetch(withQuery(path, query), init);
  } catch {
    throw new ApiError(0, { detail: 'The server could not be reached; check the connection and try again.' });
  }
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  const data = type.includes('json') ? await res.json().catch(() => null) : null;
  if (!res.ok) {
    const problem = data && typeof data === 'object' ? data : {};
    const err = new ApiError(res.status, problem, res.headers.get('retry-after'));
    if (res.status === 401 && !anonymous) onUnauthorized(err);
    throw err;
  }
  return data;
}

export const get = (path, query) => request('GET', path, { query });
export const post = (path, body) => request('POST', path, { body });
export const put = (path, body) => request('PUT', path, { body });
export const patch = (path, body) => request('PATCH', path, { body });
export const del = (path) => request('DELETE', path);

export const auth = {
  login: (username, password) =>
    request('POST', '/api/v4/auth/login', { body: { username, password }, anonymous: true }),
  logout: () => request('POST', '/api/v4/auth/logout', { anonymous: true }),
  me: () => request('GET', '/api/v4/auth/me', { anonymous: true }),
  /** {needed, token_file}: whether the sign-in page offers the first-time set-up. */
  setupStatus: () => request('GET', '/api/v4/auth/setup', { anonymous: true }),
  /** The first-time set-up: the admin's API token and its new password; signs in. */
  setup: (token, new_password) =>
    request('POST', '/api/v4/auth/setup', { body: { token, new_password }, anonymous: true }),
  setPassword: (current_password, new_password) =>
    post('/api/v4/auth/password', { current_password, new_password }),
};

const enc = encodeURIComponent;

export const users = {
  list: (query) => get('/api/v4/manage/users/', query),
  create: (body) => post('/api/v4/manage/users/', body),
  deactivate: (id) => del(`/api/v4/manage/users/${enc(id)}/`),
  rotateToken: (id) => post(`/api/v4/manage/users/${enc(id)}/rotate-token/`),
};

export const certificates = {
  list: (query) => get('/api/v4/manage/mqtt-certificates/', query),
  get: (id) => get(`/api/v4/manage/mqtt-certificates/${enc(id)}/`),
  create: (body) => post('/api/v4/manage/mqtt-certificates/', body),
  revoke: (id, reason) => post(`/api/v4/manage/mqtt-certificates/${enc(id)}/revoke/`, { reason }),
  /** A new certificate for the same name and binding; the old one is superseded after the grace. */
  renew: (id, csr_pem) => post(`/api/v4/manage/mqtt-certificates/${enc(id)}/renew/`, csr_pem ? { csr_pem } : undefined),
};

const devicePath = (d) => `/api/v4/manage/devices/${enc(d.tenant)}/${enc(d.device_id)}/`;

export const devices = {
  list: (query) => get('/api/v4/manage/devices/', query),
  create: (body) => post('/api/v4/manage/devices/', body),
  bulk: (rows) => post('/api/v4/manage/devices/bulk/', rows),
  patch: (d, body) => patch(devicePath(d), body),
  remove: (d) => del(devicePath(d)),
  rotate: (d, body) => put(`${devicePath(d)}credentials/`, body),
  /** The device's certificates (enrolled over EST), newest first. */
  certificates: (d, query) => get(`${devicePath(d)}certificates/`, query),
  revokeCertificate: (d, id, reason) => post(`${devicePath(d)}certificates/${enc(id)}/revoke/`, { reason }),
};

/** Claims: claim certificates that enroll a tenant's devices over EST. */
export const claims = {
  list: (query) => get('/api/v4/manage/claims/', query),
  get: (id) => get(`/api/v4/manage/claims/${enc(id)}/`),
  create: (body) => post('/api/v4/manage/claims/', body),
  revoke: (id) => post(`/api/v4/manage/claims/${enc(id)}/revoke/`),
};

const productPath = (pk) => `/api/v4/manage/products/${enc(pk)}/`;
const productDevicePath = (pk, dk) => `${productPath(pk)}devices/${enc(dk)}/`;

/** Products of sign-based devices (EnOS, Alibaba Cloud IoT) and their devices. */
export const products = {
  list: (query) => get('/api/v4/manage/products/', query),
  get: (pk) => get(productPath(pk)),
  create: (body) => post('/api/v4/manage/products/', body),
  patch: (pk, body) => patch(productPath(pk), body),
  remove: (pk) => del(productPath(pk)),
  rotateSecret: (pk) => post(`${productPath(pk)}rotate-secret/`),
  devices: {
    list: (pk, query) => get(`${productPath(pk)}devices/`, query),
    create: (pk, body) => post(`${productPath(pk)}devices/`, body),
    bulk: (pk, rows) => post(`${productPath(pk)}devices/bulk/`, rows),
    patch: (pk, dk, body) => patch(productDevicePath(pk, dk), body),
    remove: (pk, dk) => del(productDevicePath(pk, dk)),
    rotateSecret: (pk, dk) => post(`${productDevicePath(pk, dk)}rotate-secret/`),
    resetActivation: (pk, dk) => post(`${productDevicePath(pk, dk)}reset-activation/`),
  },
};

const webhookPath = (id) => `/api/v4/manage/webhooks/${enc(id)}/`;

/**
 * Webhook endpoints (admins see all, managers their enterprise's): the signing secret is in
 * the create and rotate-secret answers only; each endpoint has a delivery log.
 */
export const webhooks = {
  list: (query) => get('/api/v4/manage/webhooks/', query),
  get: (id) => get(webhookPath(id)),
  create: (body) => post('/api/v4/manage/webhooks/', body),
  patch: (id, body) => patch(webhookPath(id), body),
  remove: (id) => del(webhookPath(id)),
  rotateSecret: (id) => post(`${webhookPath(id)}rotate-secret/`),
  /** Queues a webhook.test event for this endpoint alone; resolves to its delivery. */
  test: (id) => post(`${webhookPath(id)}test/`),
  /** The endpoint's deliveries, newest first (`status`: pending, delivered or failed). */
  deliveries: (id, query) => get(`${webhookPath(id)}deliveries/`, query),
  redeliver: (id, deliveryId) => post(`${webhookPath(id)}deliveries/${enc(deliveryId)}/redeliver/`),
};

/** The audit log: a page of records, newest first; admins see all, managers their enterprise. */
export const audit = {
  list: (query) => get('/api/v4/manage/audit/', query),
  /**
   * The JSON Lines export of every record matching `query`, oldest first: a plain GET the
   * session cookie authenticates, for a download link.
   */
  exportUrl: (query) => withQuery('/api/v4/manage/audit/', { ...query, format: 'jsonl' }),
};

/**
 * The live sessions fleetca asked the brokers to end (admins see all, managers their
 * enterprise's), newest first (`status`: pending, done or failed), with `brokers`: the names
 * of the configured brokers (none: changes queue nothing).
 */
export const disconnects = {
  list: (query) => get('/api/v4/manage/disconnects/', query),
};

/**
 * Adding, importing and activating CAs (admins): each takes effect when fleetca restarts.
 * `add({signed_by: 'fleetca' | 'operator', common_name?, token_key?})`.
 */
export const authorities = {
  add: (body) => post('/api/v4/manage/ca/intermediates/', body),
  import: (id, certificate_pem, root_pem) => post(`/api/v4/manage/ca/${enc(String(id))}/import/`, { certificate_pem, root_pem }),
  activate: (id) => post(`/api/v4/manage/ca/${enc(String(id))}/activate/`),
  revoke: (id, reason) => post(`/api/v4/manage/ca/${enc(String(id))}/revoke/`, { reason }),
};

export const overview = {
  stats: () => get('/api/v4/manage/stats/'),
  ca: () => get('/api/v4/manage/ca/'),
  settings: () => get('/api/v4/manage/settings/'),
};
