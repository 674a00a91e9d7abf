// Live sessions: when a change makes a credential invalid (a certificate revoked, an API key
// deactivated or its token rotated, a device disabled, deleted or rotated, …), fleetca queues
// a disconnect and asks every broker of `[[brokers]]` in the settings to end the clients' live
// MQTT sessions, retrying until each confirms. This page shows the configured brokers (or
// that none is, and then nothing is queued), the disconnects by status and the queue, newest
// first; it reads itself again every 2 s while a disconnect is pending. Admins see every
// enterprise, managers their own (the server pins it).

import * as api from '../api.js';
import { h, mount, field, select, heading, badge, listView, filterBar } from '../ui.js';
import { fmtTime } from './audit.js';

export const title = 'Live sessions';

const STATUSES = [['', 'Any status'], ['pending', 'Pending'], ['done', 'Done'], ['failed', 'Failed']];

/** How often the page reads the queue again while a disconnect is pending. */
const POLL_MS = 2000;

const HEADERS = ['Time', 'Change', 'Target', 'Enterprise', 'Status', 'Brokers confirmed', 'Attempts', 'Last error', 'Next attempt'];

/** The changes that end live sessions, as the page describes them. */
export const CHANGES = {
  'certificate.revoke': 'certificate revoked',
  'user.deactivate': 'API key deactivated',
  'user.rotate_token': 'API key token rotated (its password sessions)',
  'device.disable': 'device disabled',
  'device.delete': 'device deleted',
  'device.rotate': 'device credentials rotated',
  'product_device.disable': 'product device disabled',
  'product_device.delete': 'product device deleted',
  'product_device.rotate_secret': 'product device secret rotated',
  'product.update': 'product disabled',
  'product.delete': 'product deleted',
  'product.rotate_secret': 'product secret rotated',
};

function statusBadge(status) {
  if (status === 'done') return badge('done', 'success');
  if (status === 'failed') return badge('failed', 'failure');
  return badge(status, 'pending');
}

/** A time as its date and its time of day (UTC), which wrap apart in a narrow column. */
function stamp(iso) {
  const [date, time] = fmtTime(iso).split(' ');
  return h('time', { class: 'stamp', datetime: iso, title: iso }, h('span', null, date), ' ', h('span', null, `${time} UTC`));
}

/** "due now", "in 4 s", "in 3 min", "in 2 h": when the next attempt is, from now. */
function fromNow(iso) {
  const ms = new Date(iso).getTime() - Date.now();
  if (Number.isNaN(ms)) return '';
  if (ms <= 1000) return 'due now';
  const s = Math.round(ms / 1000);
  if (s < 120) return `in ${s} s`;
  if (s < 7200) return `in ${Math.round(s / 60)} min`;
  return `in ${Math.round(s / 3600)} h`;
}

/** The configured brokers, or why there are none. */
function brokersPanel(brokers) {
  if (!brokers.length) {
    return h(
      'div',
      { class: 'warning', 'data-testid': 'no-brokers' },
      h('p', null, h('strong', null, 'No broker is configured.'), ' fleetca ends no live sessions and queues nothing: a client whose certificate is revoked or whose key is deactivated stays connected until it reconnects.'),
      h(
        'p',
        null,
        'To end them, add a ',
        h('code', null, '[[brokers]]'),
        ' entry to the settings file (kind ',
        h('code', null, 'rabbitmq'),
        ', ',
        h('code', null, 'emqx'),
        ' or ',
        h('code', null, 'command'),
        ') and restart fleetca; the README’s section “Live sessions” shows how.',
      ),
    );
  }
  return [
    h('p', null, `fleetca asks ${brokers.length === 1 ? 'this broker' : `these ${brokers.length} brokers`} to end the sessions, and retries each until it confirms:`),
    h('ul', { class: 'broker-list', 'data-testid': 'brokers' }, brokers.map((name) => h('li', { 'data-testid': 'broker', 'data-name': name }, h('code', null, name)))),
    h('p', { class: 'muted small' }, 'Set in the settings file as ', h('code', null, '[[brokers]]'), ' entries.'),
  ];
}

function countCard(label, status, testid) {
  const value = h('span', { class: 'stat-value', 'data-testid': testid }, '–');
  const card = h('div', { class: 'card stat', 'data-status': status }, value, h('span', { class: 'stat-label' }, label));
  return {
    el: card,
    set: (n) => {
      value.textContent = String(n);
      card.classList.toggle('attention', n > 0 && status !== 'done');
    },
  };
}

export async function render(root, ctx) {
  const admin = ctx.user.role === 'admin';
  let brokers = null; // the configured brokers' names, as last read
  let timer = null;

  const brokersSlot = h('div', { 'data-testid': 'brokers-panel', 'aria-live': 'polite' });
  const counts = {
    pending: countCard('Pending', 'pending', 'count-pending'),
    done: countCard('Done', 'done', 'count-done'),
    failed: countCard('Failed (given up)', 'failed', 'count-failed'),
  };
  const countsGroup = h('div', { class: 'stats', role: 'group', 'aria-label': 'Disconnects by status', 'data-testid': 'disconnect-counts' }, Object.values(counts).map((c) => c.el));
  const status = select({ name: 'status', 'data-testid': 'disconnects-status' }, STATUSES);
  const updated = h('p', { class: 'muted small', 'data-testid': 'disconnects-updated' });

  /** Reads the queue again in POLL_MS while a disconnect is pending and the page is shown. */
  const poll = (pending) => {
    clearTimeout(timer);
    if (pending) timer = setTimeout(() => root.isConnected && ctx.isCurrent() && list.reload(), POLL_MS);
  };

  const list = listView({
    noun: 'disconnects',
    testid: 'disconnects-list',
    headers: HEADERS,
    empty: () => {
      if (status.value) return `No ${status.value} disconnects.`;
      return brokers?.length === 0 ? 'Nothing is queued while no broker is configured.' : 'No disconnects yet.';
    },
    filters: () => ({ status: status.value }),
    load: async (q) => {
      const [data, ...byStatus] = await Promise.all([
        api.disconnects.list(q),
        ...Object.keys(counts).map((s) => api.disconnects.list({ status: s, page_size: 1 })),
      ]);
      Object.values(counts).forEach((c, i) => c.set(byStatus[i].count));
      const names = data.brokers || [];
      // Without brokers and with nothing ever queued, the counts say nothing.
      countsGroup.hidden = !names.length && byStatus.every((b) => b.count === 0);
      if (brokers === null || brokers.join('\n') !== names.join('\n')) mount(brokersSlot, brokersPanel(names));
      brokers = names;
      const pending = byStatus[0].count > 0 || data.results.some((d) => d.status === 'pending');
      updated.textContent = `Read at ${fmtTime(new Date().toISOString())}${pending ? '; read again every 2 s while a disconnect is pending.' : '.'}`;
      poll(pending);
      return data;
    },
    row: (d) => {
      const done = d.done_brokers || [];
      const missing = (brokers || []).filter((b) => !done.includes(b));
      return h(
        'tr',
        {
          class: d.status === 'done' ? null : `row-${d.status}`,
          'data-testid': 'disconnect-row',
          'data-id': d.id,
          'data-action': d.action,
          'data-target-kind': d.target_kind,
          'data-target-id': d.target_id,
          'data-enterprise': d.enterprise ?? '',
          'data-status': d.status,
          'data-done-brokers': done.join(','),
          'data-attempts': d.attempts,
        },
        h(
          'td',
          null,
          stamp(d.created_at),
          d.done_at ? h('div', { class: 'muted small' }, 'ended ', stamp(d.done_at)) : null,
        ),
        h(
          'td',
          null,
          h('span', { class: 'mono small', 'data-testid': 'disconnect-action' }, d.action),
          CHANGES[d.action] ? h('div', { class: 'muted small' }, CHANGES[d.action]) : null,
        ),
        h('td', null, d.target_kind, h('div', { class: 'mono small break', title: d.target_id, 'data-testid': 'disconnect-target-id' }, d.target_id)),
        h('td', null, d.enterprise || '—'),
        h('td', { 'data-testid': 'disconnect-status' }, statusBadge(d.status)),
        h(
          'td',
          { 'data-testid': 'disconnect-brokers' },
          done.length ? done.map((b) => h('div', { class: 'mono small', 'data-testid': 'confirmed-broker' }, b)) : h('span', { class: 'muted' }, d.status === 'pending' ? 'none yet' : 'none'),
          d.status !== 'done' && missing.length
            ? h('div', { class: 'muted small', 'data-testid': 'waiting-brokers' }, `${d.status === 'failed' ? 'not confirmed' : 'waiting for'}: ${missing.join(', ')}`)
            : null,
        ),
        h('td', { 'data-testid': 'disconnect-attempts' }, String(d.attempts)),
        h('td', null, d.last_error ? h('div', { class: 'small error-text wrap', 'data-testid': 'disconnect-last-error' }, d.last_error) : '—'),
        h(
          'td',
          { 'data-testid': 'disconnect-next' },
          d.status === 'pending' && d.next_attempt_at
            ? [h('div', null, fromNow(d.next_attempt_at)), h('div', { class: 'muted small' }, stamp(d.next_attempt_at))]
            : '—',
        ),
      );
    },
  });

  const refresh = h('button', { type: 'button', class: 'secondary', 'data-testid': 'disconnects-refresh', onClick: () => list.reload() }, 'Refresh');
  const scope = admin ? 'every enterprise' : `enterprise ${ctx.user.enterprise}`;
  root.append(
    ...heading(
      'Live sessions',
      `Brokers check a credential only when a client connects. When a change makes one invalid (a certificate revoked, an API key deactivated or its token rotated, a device disabled, deleted or rotated, …), fleetca asks each broker to end the clients’ live MQTT sessions, and retries until every broker confirms. Listed: the disconnects of ${scope}, newest first.`,
    ),
    h('div', { class: 'card' }, h('h2', null, 'Brokers'), brokersSlot),
    countsGroup,
    h(
      'div',
      { class: 'card' },
      h('h2', null, 'Disconnects'),
      filterBar([field('Status', status), refresh], () => list.reload(true), 'Filter the disconnects'),
      updated,
      list.el,
    ),
  );
  await list.reload();
}
