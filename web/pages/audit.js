// The audit log: who did what to which target, newest first, with filters. A row opens to
// its details, request id and hash; the export downloads every matching record as JSON
// Lines. Admins see every enterprise, managers their own (the server pins it).

import * as api from '../api.js';
import { h, field, select, heading, badge, listView, filterBar, copyButton, uid } from '../ui.js';

export const title = 'Audit';

/** The actions fleetca records, by what they act on. */
export const ACTION_GROUPS = [
  ['Users and tokens', ['user.create', 'user.update', 'user.activate', 'user.deactivate', 'user.rotate_token', 'user.set_password']],
  ['Certificates', ['certificate.create', 'certificate.enroll', 'certificate.renew', 'certificate.revoke']],
  ['Claims', ['claim.create', 'claim.revoke']],
  ['Devices', ['device.create', 'device.update', 'device.enable', 'device.disable', 'device.rotate', 'device.delete']],
  ['Products', ['product.create', 'product.update', 'product.rotate_secret', 'product.delete']],
  [
    'Product devices',
    [
      'product_device.create',
      'product_device.update',
      'product_device.enable',
      'product_device.disable',
      'product_device.rotate_secret',
      'product_device.reset_activation',
      'product_device.activate',
      'product_device.delete',
    ],
  ],
  ['Webhooks', ['webhook.create', 'webhook.update', 'webhook.rotate_secret', 'webhook.delete', 'webhook.test', 'webhook.redeliver']],
  ['Refused callers', ['auth.sign_in_failed', 'auth.token_failed', 'est.auth_failed', 'auth.failures_suppressed']],
  ['Restores', ['crl.repair', 'crl.repair_acknowledge']],
];

const TARGET_KINDS = ['user', 'certificate', 'claim', 'device', 'product', 'product_device', 'webhook', 'session', 'crl', 'repair'];

const HEADERS = ['Time', 'Actor', 'Action', 'Target', 'Enterprise', 'Outcome', 'Client address', 'Details'];

/** "2027-11-22 23:29:05 UTC": audit records are told apart by the second. */
export function fmtTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso || '—';
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/**
 * A datetime-local value (the UI shows times in UTC, so it is read as UTC) as RFC 3339, or
 * '' when empty. With `end`, the end of the minute (or second) it names: the API's `until`
 * is exclusive, and "until 10:05" should keep what happened at 10:05:30.
 */
export function utcFromInput(value, { end = false } = {}) {
  if (!value) return '';
  const d = new Date(`${value}Z`);
  if (Number.isNaN(d.getTime())) return '';
  if (end) d.setTime(d.getTime() + (value.length > 16 ? 1000 : 60_000));
  return d.toISOString().replace('.000Z', 'Z');
}

/** A hash cut to 12 characters, the whole of it in the title and behind a copy button. */
function hashValue(hash, testid, label) {
  if (!hash) return h('dd', null, '—');
  return h(
    'dd',
    null,
    h('code', { title: hash, 'data-testid': testid }, hash.length > 12 ? `${hash.slice(0, 12)}…` : hash),
    ' ',
    copyButton(hash, 'Copy', undefined, `Copy the ${label}`),
  );
}

/** What a record's row opens to: its details (JSON), request id, ids and hashes. */
function detailsPanel(r) {
  const titleId = uid('audit-details-title');
  const details = r.details && typeof r.details === 'object' ? r.details : {};
  return h(
    'section',
    { class: 'detail-panel', 'aria-labelledby': titleId },
    h('h3', { id: titleId }, `Record ${r.seq}: ${r.action}`),
    h(
      'dl',
      { class: 'facts' },
      h('dt', null, 'Time'), h('dd', { class: 'mono small break' }, r.at),
      h('dt', null, 'Request id'), h('dd', { class: 'mono small break', 'data-testid': 'audit-request-id' }, r.request_id || '—'),
      h('dt', null, 'Actor id'), h('dd', { class: 'mono small break' }, r.actor_id || '—'),
      h('dt', null, 'Target id'), h('dd', { class: 'mono small break' }, r.target_id || '—'),
      h('dt', null, 'Hash'), hashValue(r.hash, 'audit-hash', 'hash'),
      h('dt', null, 'Previous hash'), hashValue(r.prev_hash, 'audit-prev-hash', 'previous hash'),
    ),
    h('h4', null, 'Details'),
    Object.keys(details).length
      ? h('pre', { class: 'json', tabindex: '0', 'data-testid': 'audit-details-json' }, JSON.stringify(details, null, 2))
      : h('p', { class: 'muted', 'data-testid': 'audit-details-json' }, 'No details.'),
  );
}

export async function render(root, ctx) {
  const admin = ctx.user.role === 'admin';

  // Filters.
  const actor = h('input', { name: 'actor', placeholder: 'e.g. admin, system', autocapitalize: 'none', spellcheck: 'false', 'data-testid': 'audit-actor' });
  const action = h(
    'select',
    { name: 'action', 'data-testid': 'audit-action' },
    h('option', { value: '' }, 'Any action'),
    ACTION_GROUPS.map(([label, actions]) => h('optgroup', { label }, actions.map((a) => h('option', { value: a }, a)))),
  );
  const targetKind = select({ name: 'target_kind', 'data-testid': 'audit-target-kind' }, [['', 'Any kind'], ...TARGET_KINDS.map((k) => [k, k])]);
  const targetId = h('input', { name: 'target_id', placeholder: 'any', autocapitalize: 'none', spellcheck: 'false', class: 'mono', 'data-testid': 'audit-target-id' });
  const enterprise = admin ? h('input', { name: 'enterprise', placeholder: 'any', autocapitalize: 'none', spellcheck: 'false', 'data-testid': 'audit-enterprise' }) : null;
  const since = h('input', { type: 'datetime-local', name: 'since', 'data-testid': 'audit-since' });
  const until = h('input', { type: 'datetime-local', name: 'until', 'data-testid': 'audit-until' });

  const filters = () => ({
    actor: actor.value.trim(),
    action: action.value,
    target_kind: targetKind.value,
    target_id: targetId.value.trim(),
    enterprise: enterprise?.value.trim(),
    since: utcFromInput(since.value),
    until: utcFromInput(until.value, { end: true }),
  });

  // The export: the filters of the list as shown (kept in step on every load).
  const exportLink = h('a', { class: 'button secondary', 'data-testid': 'audit-export' }, 'Export (JSON Lines)');
  const setExport = (f) => {
    exportLink.href = api.audit.exportUrl(f);
    exportLink.download = `fleetca-audit-${new Date().toISOString().slice(0, 10)}.jsonl`;
  };
  setExport(filters());

  // Opens or closes the panel under a record's row.
  function setPanel(r, tr, button, open) {
    const existing = button.getAttribute('aria-controls') ? document.getElementById(button.getAttribute('aria-controls')) : null;
    existing?.remove();
    button.setAttribute('aria-expanded', String(open));
    button.removeAttribute('aria-controls');
    if (!open) return;
    const panelId = uid('audit-details');
    tr.after(
      h(
        'tr',
        { id: panelId, class: 'detail-row', 'data-testid': 'audit-details', 'data-seq': r.seq },
        h('td', { colspan: HEADERS.length, class: 'detail' }, detailsPanel(r)),
      ),
    );
    button.setAttribute('aria-controls', panelId);
  }

  const list = listView({
    noun: 'records',
    testid: 'audit-list',
    headers: HEADERS,
    empty: 'No audit records match.',
    load: (q) => {
      const { page, page_size, ...f } = q;
      setExport(f);
      return api.audit.list(q);
    },
    filters,
    row: (r) => {
      const toggle = h(
        'button',
        {
          type: 'button',
          class: 'secondary small',
          'aria-expanded': 'false',
          'aria-label': `Details of record ${r.seq}`,
          'data-testid': 'audit-toggle',
          onClick: () => setPanel(r, tr, toggle, toggle.getAttribute('aria-expanded') !== 'true'),
        },
        'Details',
      );
      const tr = h(
        'tr',
        {
          'data-testid': 'audit-row',
          'data-seq': r.seq,
          'data-action': r.action,
          'data-actor': r.actor,
          'data-role': r.role,
          'data-target-kind': r.target_kind,
          'data-target-id': r.target_id,
          'data-enterprise': r.enterprise ?? '',
          'data-outcome': r.outcome,
        },
        h('td', null, h('time', { datetime: r.at, title: r.at }, fmtTime(r.at))),
        h('td', { 'data-testid': 'audit-actor-cell' }, h('strong', null, r.actor || '—'), h('div', { class: 'muted small' }, r.role)),
        h('td', null, h('span', { class: 'mono small' }, r.action)),
        h(
          'td',
          null,
          r.target_kind,
          r.target_id ? h('div', { class: 'mono small break', title: r.target_id }, r.target_id) : null,
        ),
        h('td', null, r.enterprise || '—'),
        h('td', { 'data-testid': 'audit-outcome' }, badge(r.outcome, r.outcome === 'failure' ? 'failure' : 'success')),
        h('td', { class: 'mono small', 'data-testid': 'audit-client-addr' }, r.client_addr || '—'),
        h('td', { class: 'row-actions' }, toggle),
      );
      return tr;
    },
  });

  const scope = admin ? 'every enterprise' : `enterprise ${ctx.user.enterprise}`;
  root.append(
    ...heading('Audit', `Who changed what in ${scope}, and refused sign-ins, newest first. Each record is chained to the one before by its hash; fleetca audit verify checks the chain.`),
    h(
      'div',
      { class: 'card' },
      h('h2', null, 'Audit log'),
      filterBar(
        [
          field('Actor', actor),
          field('Action', action),
          field('Target kind', targetKind),
          field('Target id', targetId),
          enterprise ? field('Enterprise', enterprise) : null,
          field('Since (UTC)', since, 'from this minute on'),
          field('Until (UTC)', until, 'to the end of this minute'),
        ],
        () => list.reload(true),
        'Filter the audit log',
      ),
      h(
        'div',
        { class: 'actions left export' },
        exportLink,
        h('span', { class: 'muted small' }, 'Every record matching the filters, oldest first, one JSON object a line.'),
      ),
      list.el,
    ),
  );
  await list.reload();
}
