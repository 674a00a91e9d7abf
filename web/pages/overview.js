// Overview: counts in the caller's scope, the CRL's state and certificate expiries by month.

import * as api from '../api.js';
import { h, s, fmtDate, heading, badge, table } from '../ui.js';

export const title = 'Overview';

function stat(label, value, testid, href) {
  const body = [h('span', { class: 'stat-value', 'data-testid': testid }, String(value)), h('span', { class: 'stat-label' }, label)];
  return href ? h('a', { class: 'card stat', href }, body) : h('div', { class: 'card stat' }, body);
}

const monthKey = (y, m) => `${y}-${String(m).padStart(2, '0')}`;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** "2027-11" → "Nov ’27" */
const monthLabel = (key) => `${MONTHS[Number(key.slice(5)) - 1]} ’${key.slice(2, 4)}`;

/**
 * Every month from this one (or the first with a count, if earlier) to the last with a
 * count, at least twelve, gaps filled with zero.
 */
function fillMonths(rows, now = new Date()) {
  const counts = new Map(rows.map((r) => [r.month, r.count]));
  const thisMonth = monthKey(now.getUTCFullYear(), now.getUTCMonth() + 1);
  const first = rows.length && rows[0].month < thisMonth ? rows[0].month : thisMonth;
  const last = rows.length ? rows[rows.length - 1].month : thisMonth;
  let [y, m] = first.split('-').map(Number);
  const out = [];
  while (out.length < 12 || monthKey(y, m) <= last) {
    const key = monthKey(y, m);
    out.push({ month: key, count: counts.get(key) || 0 });
    if (m === 12) { m = 1; y++; } else m++;
  }
  return out;
}

function expiryChart(rows, width) {
  if (!rows.length) return h('p', { class: 'muted', 'data-testid': 'expiry-chart-empty' }, 'No active certificates.');
  const months = fillMonths(rows);
  const max = Math.max(...months.map((m) => m.count));
  const slot = width / months.length;
  const barW = Math.max(2, slot * 0.72);
  const chartH = 160;
  const top = 18;
  const bottom = 24;
  const labelEvery = Math.ceil(months.length / Math.max(1, Math.floor(width / 48)));
  const bars = months.map((m, i) => {
    const x = i * slot + (slot - barW) / 2;
    const bh = max ? Math.round((m.count / max) * chartH) : 0;
    const y = top + chartH - bh;
    return s(
      'g',
      { 'data-month': m.month, 'data-count': m.count },
      s('title', null, `${m.month}: ${m.count} certificate${m.count === 1 ? '' : 's'}`),
      s('rect', { x, y, width: barW, height: Math.max(bh, m.count ? 2 : 0), rx: Math.min(3, barW / 3), class: 'bar' }),
      m.count && slot >= 16 ? s('text', { x: x + barW / 2, y: y - 4, 'text-anchor': 'middle', class: 'bar-value' }, String(m.count)) : null,
      i % labelEvery === 0
        ? s('text', { x: i * slot + slot / 2, y: top + chartH + 16, 'text-anchor': 'middle', class: 'bar-label' }, monthLabel(m.month))
        : null,
    );
  });
  const svg = s(
    'svg',
    {
      // Room at the sides for the first and last month's label.
      viewBox: `-22 0 ${width + 44} ${top + chartH + bottom}`,
      class: 'chart',
      role: 'img',
      'aria-labelledby': 'expiry-chart-title',
      'data-testid': 'expiry-chart',
    },
    s('title', { id: 'expiry-chart-title' }, 'Active certificates by month of expiry'),
    s('line', { x1: 0, x2: width, y1: top + chartH + 0.5, y2: top + chartH + 0.5, class: 'axis' }),
    bars,
  );
  const data = table(
    ['Month', 'Certificates expiring'],
    rows.map((r) => h('tr', null, h('td', null, r.month), h('td', null, String(r.count)))),
    { class: 'compact' },
  );
  return h(
    'div',
    null,
    svg,
    h('details', null, h('summary', null, 'As a table'), data),
  );
}

function crlCard(crl) {
  if (!crl) return h('div', { class: 'card' }, h('h2', null, 'Certificate revocation list'), h('p', null, 'No CRL has been signed yet.'));
  const p = crl.publish || {};
  const status = p.ok
    ? badge('published', 'active')
    : badge('publish failed', 'revoked');
  return h(
    'div',
    { class: 'card', 'data-testid': 'crl-card' },
    h('h2', null, 'Certificate revocation list'),
    h(
      'dl',
      { class: 'facts' },
      h('dt', null, 'Number'), h('dd', { 'data-testid': 'crl-number' }, String(crl.number)),
      h('dt', null, 'thisUpdate'), h('dd', { 'data-testid': 'crl-this-update' }, fmtDate(crl.this_update)),
      h('dt', null, 'nextUpdate'), h('dd', { 'data-testid': 'crl-next-update' }, fmtDate(crl.next_update)),
      h('dt', null, 'Entries'), h('dd', { 'data-testid': 'crl-entries' }, String(crl.entries)),
      h('dt', null, 'Last publish'),
      h(
        'dd',
        { 'data-testid': 'crl-publish' },
        status,
        p.at ? ` ${fmtDate(p.at)}` : '',
        p.error ? h('div', { class: 'error-text' }, p.error) : null,
      ),
    ),
    h('p', null, h('a', { href: '/crl.pem', download: 'crl.pem' }, 'Download CRL (PEM)'), ' · ', h('a', { href: '/crl.der', download: 'crl.der' }, 'DER')),
  );
}

/** One line per broker the revocation canary watches: does it refuse revoked certificates? */
function canaryLines(canaries) {
  if (!canaries || canaries.length === 0) return null;
  const line = (c) => {
    let status;
    if (c.enforced === null || c.enforced === undefined) status = badge('not checked yet', 'expired');
    else if (c.enforced) status = badge('refuses revoked certificates', 'active');
    else if (c.revoked_refused === false) status = badge('ACCEPTS revoked certificates', 'revoked');
    else status = badge('not proven', 'revoked');
    return h(
      'li',
      { 'data-testid': `canary-${c.broker}` },
      h('strong', null, c.broker), ' ', status,
      c.checked_at ? ` checked ${fmtDate(c.checked_at)}` : '',
      c.latency_ms !== null && c.latency_ms !== undefined ? `, CONNACK in ${c.latency_ms} ms` : '',
      c.detail ? h('div', { class: 'error-text' }, c.detail) : null,
    );
  };
  return h(
    'div',
    { class: 'card', 'data-testid': 'canary-card' },
    h('h2', null, 'Revocation canary'),
    h('ul', { class: 'plain' }, ...canaries.map(line)),
  );
}

export async function render(root, ctx) {
  const stats = await api.overview.stats();
  if (!ctx.isCurrent()) return;
  const c = stats.certificates;
  const scope = ctx.user.role === 'admin' ? 'all enterprises' : `enterprise ${ctx.user.enterprise}`;
  root.append(
    ...heading('Overview', `Counts for ${scope}.`),
    h(
      'div',
      { class: 'stats' },
      stat('API keys', stats.api_keys, 'stat-api-keys', '#/keys'),
      stat('Active certificates', c.active, 'stat-active', '#/certificates'),
      stat('Revoked certificates', c.revoked, 'stat-revoked', '#/certificates'),
      stat('Expiring in 30 days', c.expiring_30d, 'stat-expiring', '#/certificates'),
      stat('Devices', stats.devices, 'stat-devices', '#/devices'),
    ),
    h(
      'div',
      { class: 'grid-2' },
      crlCard(stats.crl),
      canaryLines(stats.canaries),
      h('div', { class: 'card' }, h('h2', null, 'Certificate expiries by month'), expiryChart(stats.expiries_by_month || [], Math.max(280, Math.min(720, root.clientWidth - 60)))),
    ),
  );
}
