// API keys (service accounts): list, create (token shown once), deactivate, rotate token.

import * as api from '../api.js';
import { h, mount, field, select, fmtDate, heading, badge, busy, confirmDialog, notice, errorBox, listView, filterBar, secretField } from '../ui.js';

export const title = 'API keys';

const LABELS = { username: 'Name', enterprise: 'Enterprise' };

/** The one-time token panel. */
function tokenPanel(user, verb) {
  return h(
    'div',
    { class: 'card once', 'data-testid': 'token-panel' },
    h('h2', null, `Token for ${user.username} ${verb}`),
    h('p', { class: 'warning' }, h('strong', null, 'Copy it now: you will not see this token again.'), ' fleetca stores only a hash of it.'),
    secretField('API token', user.token, 'token-value'),
  );
}

export async function render(root, ctx) {
  const admin = ctx.user.role === 'admin';
  const out = h('div', { 'aria-live': 'polite' });

  const search = h('input', { type: 'search', name: 'search', placeholder: 'name contains…', 'data-testid': 'keys-search' });
  const status = select({ name: 'is_active', 'data-testid': 'keys-status' }, [['true', 'Active'], ['false', 'Deactivated'], ['', 'All']], 'true');
  const enterpriseFilter = admin ? h('input', { name: 'enterprise', placeholder: 'any', autocapitalize: 'none', 'data-testid': 'keys-enterprise' }) : null;

  const list = listView({
    noun: 'API keys',
    testid: 'keys-list',
    headers: ['Name', 'Enterprise', 'Status', 'Created', 'Actions'],
    load: (q) => api.users.list(q),
    filters: () => ({
      is_service_account: true,
      search: search.value.trim(),
      is_active: status.value,
      enterprise: enterpriseFilter?.value.trim(),
    }),
    row: (u) =>
      h(
        'tr',
        { 'data-testid': 'key-row', 'data-username': u.username },
        h('td', null, h('strong', null, u.username)),
        h('td', null, u.enterprise),
        h('td', null, u.is_active ? badge('active') : badge('deactivated', 'revoked')),
        h('td', null, fmtDate(u.created_at)),
        h(
          'td',
          { class: 'row-actions' },
          u.is_active
            ? [
                h('button', { type: 'button', class: 'secondary small', 'data-testid': 'key-rotate', onClick: () => rotate(u) }, 'Rotate token'),
                h('button', { type: 'button', class: 'danger small', 'data-testid': 'key-deactivate', onClick: () => deactivate(u) }, 'Deactivate'),
              ]
            : null,
        ),
      ),
  });

  async function rotate(u) {
    const ok = await confirmDialog({
      title: `Rotate the token of ${u.username}?`,
      content: h('p', null, 'The current token stops working at once. Clients using it must be given the new one.'),
      confirmLabel: 'Rotate token',
    });
    if (!ok) return;
    await busy(null, out, async () => {
      const res = await api.users.rotateToken(u.id);
      mount(out, tokenPanel(res, 'rotated'));
      out.scrollIntoView({ block: 'nearest' });
    });
  }

  async function deactivate(u) {
    const ok = await confirmDialog({
      title: `Deactivate ${u.username}?`,
      content: h('p', null, 'Its token stops working and its active certificates are revoked. This cannot be undone from the UI.'),
      confirmLabel: 'Deactivate',
      danger: true,
    });
    if (!ok) return;
    try {
      await api.users.deactivate(u.id);
      mount(out, notice(`${u.username} was deactivated.`));
      list.reload();
    } catch (err) {
      mount(out, errorBox(err));
    }
  }

  // Create.
  const username = h('input', { name: 'username', required: true, maxlength: 64, autocapitalize: 'none', spellcheck: 'false', 'data-testid': 'key-name' });
  const enterprise = admin ? h('input', { name: 'enterprise', value: ctx.user.enterprise, autocapitalize: 'none', 'data-testid': 'key-enterprise' }) : null;
  const createSlot = h('div', { 'aria-live': 'polite' });
  const createBtn = h('button', { type: 'submit', 'data-testid': 'key-create' }, 'Create API key');
  const createForm = h(
    'form',
    {
      class: 'card',
      'aria-labelledby': 'create-key-title',
      onSubmit: (e) => {
        e.preventDefault();
        busy(createBtn, createSlot, async () => {
          const body = { username: username.value.trim(), is_service_account: true };
          if (enterprise && enterprise.value.trim()) body.enterprise = enterprise.value.trim();
          try {
            const res = await api.users.create(body);
            mount(out, tokenPanel(res, 'created'));
            createForm.reset();
            list.reload(true);
          } catch (err) {
            mount(createSlot, errorBox(err, LABELS));
          }
        });
      },
    },
    h('h2', { id: 'create-key-title' }, 'New API key'),
    h(
      'div',
      { class: 'row' },
      field('Name', username, '3–64 of a–z, 0–9, ".", "_" and "-"'),
      enterprise ? field('Enterprise', enterprise, 'e.g. nnn.acme') : null,
    ),
    createSlot,
    h('div', { class: 'actions' }, createBtn),
  );

  root.append(
    ...heading('API keys', 'Service accounts that create certificates and call the API with a Bearer token.'),
    createForm,
    out,
    h(
      'div',
      { class: 'card' },
      h('h2', null, 'All API keys'),
      filterBar(
        [
          field('Search', search),
          field('Status', status),
          enterpriseFilter ? field('Enterprise', enterpriseFilter) : null,
        ],
        () => list.reload(true),
        'Filter API keys',
      ),
      list.el,
    ),
  );
  await list.reload();
}
