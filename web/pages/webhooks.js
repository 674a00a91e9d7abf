// Webhooks: endpoints that receive fleetca's events, signed as Standard Webhooks. List,
// create (the signing secret shown once), send a test event, pause/resume, rotate the
// secret (shown once), delete, and each endpoint's delivery log in a panel under its row
// (status filter, redeliver a failed one; refreshed while deliveries are pending). Admins
// see every endpoint, managers their enterprise's (the server pins it).

import * as api from '../api.js';
import { h, mount, field, select, fmtDate, heading, badge, busy, confirmDialog, notice, errorBox, listView, filterBar, secretField, uid } from '../ui.js';
import { fmtTime } from './audit.js';

export const title = 'Webhooks';

const LABELS = { url: 'URL', events: 'Events', enterprise: 'Enterprise', description: 'Description' };

/** The events an endpoint may subscribe to, and when each is sent. */
export const EVENTS = [
  ['certificate.issued', 'a certificate is created or enrolled'],
  ['certificate.revoked', 'a certificate is revoked'],
  ['certificate.expiring', '30, 7 and 1 days before a certificate expires'],
  ['certificate.renewed', 'a certificate is renewed'],
  ['device.disabled', 'a device is disabled'],
  ['device.deleted', 'a device is deleted'],
  ['api_key.deactivated', 'an API key is deactivated'],
  ['crl.publication_failed', 'writing the CRL file or running its reload command failed'],
  ['ca.expiring', '180, 90 and 30 days before a CA fleetca trusts expires'],
  ['broker.revocation_not_enforced', 'a broker accepted the revocation canary\'s revoked certificate'],
];

/** Events about fleetca itself: only for an endpoint of every enterprise (an admin's). */
const SYSTEM_EVENTS = ['crl.publication_failed', 'ca.expiring', 'broker.revocation_not_enforced'];

const DELIVERY_STATUSES = [['', 'Any status'], ['pending', 'Pending'], ['delivered', 'Delivered'], ['failed', 'Failed']];

/** How often an open delivery log is read again while one of its deliveries is pending. */
const POLL_MS = 2000;

const HEADERS = ['Endpoint', 'Events', 'Enterprise', 'Status', 'Created', 'Actions'];

const statusBadge = (w) => (w.is_active ? badge('active') : badge('paused', 'expired'));

function deliveryBadge(status) {
  if (status === 'delivered') return badge('delivered', 'success');
  if (status === 'failed') return badge('failed', 'failure');
  return badge(status, 'expired');
}

/** The one-time signing secret panel. */
function secretPanel(w, verb) {
  return h(
    'div',
    { class: 'card once', 'data-testid': 'webhook-secret-panel' },
    h('h2', null, `Webhook ${verb}`),
    h('p', { class: 'mono small break', 'data-testid': 'webhook-secret-url' }, w.url),
    h('p', { class: 'warning' }, h('strong', null, 'Copy the signing secret now: you will not see it again.'), ' fleetca stores it sealed and signs every delivery with it.'),
    secretField('Signing secret', w.secret, 'webhook-secret'),
    h(
      'p',
      { class: 'muted small' },
      'The receiver checks the ',
      h('code', null, 'webhook-signature'),
      ' header of each delivery with it, as the Standard Webhooks libraries do.',
    ),
  );
}

/** The event checkboxes; `system` adds the events of fleetca itself (admins only). */
function eventControls(system) {
  const boxes = EVENTS.filter(([name]) => system || !SYSTEM_EVENTS.includes(name)).map(([name, when]) => {
    const hintId = uid('event-hint');
    const input = h('input', { type: 'checkbox', name: 'events', value: name, 'aria-describedby': hintId, 'data-testid': `webhook-event-${name}` });
    return {
      input,
      el: h(
        'div',
        null,
        h('label', { class: 'check' }, input, h('code', null, name)),
        h('small', { class: 'hint', id: hintId }, SYSTEM_EVENTS.includes(name) ? `${when} (endpoints of every enterprise only)` : when),
      ),
    };
  });
  const el = h('fieldset', { class: 'sub' }, h('legend', null, 'Events'), h('div', { class: 'checks' }, boxes.map((b) => b.el)));
  return {
    el,
    value: () => boxes.filter((b) => b.input.checked && !b.input.disabled).map((b) => b.input.value),
    /** fleetca's own events go only to an endpoint without an enterprise. */
    scope: (enterprise) => {
      for (const b of boxes) {
        if (!SYSTEM_EVENTS.includes(b.input.value)) continue;
        b.input.disabled = Boolean(enterprise);
        if (b.input.disabled) b.input.checked = false;
      }
    },
  };
}

/**
 * An endpoint's delivery log: a status filter, a paged table with a redeliver action per
 * failed delivery. While a delivery shown is pending, the log reads itself again every
 * POLL_MS, until the panel leaves the page.
 */
function deliveryLog(w) {
  const titleId = uid('webhook-deliveries-title');
  const slot = h('div', { 'aria-live': 'polite' });
  const status = select({ name: 'status', 'data-testid': 'deliveries-status' }, DELIVERY_STATUSES);
  let timer = null;
  let el = null;
  const poll = (pending) => {
    clearTimeout(timer);
    if (pending) timer = setTimeout(() => el?.isConnected && list.reload(), POLL_MS);
  };

  const list = listView({
    noun: 'deliveries',
    testid: 'webhook-deliveries-list',
    pageSize: 10,
    quiet: true,
    pagerLabel: `Pages of the deliveries to ${w.url}`,
    headers: ['Time', 'Event', 'Status', 'Attempts', 'Last answer', 'Actions'],
    load: async (q) => {
      const data = await api.webhooks.deliveries(w.id, q);
      poll(data.results.some((d) => d.status === 'pending'));
      return data;
    },
    filters: () => ({ status: status.value }),
    row: (d) =>
      h(
        'tr',
        { 'data-testid': 'delivery-row', 'data-id': d.id, 'data-event-type': d.event_type, 'data-status': d.status },
        h(
          'td',
          null,
          h('time', { datetime: d.created_at, title: d.created_at }, fmtTime(d.created_at)),
          d.delivered_at ? h('div', { class: 'muted small' }, `delivered ${fmtTime(d.delivered_at)}`) : null,
        ),
        h(
          'td',
          null,
          h('span', { class: 'mono small', 'data-testid': 'delivery-event-type' }, d.event_type),
          h('div', { class: 'mono small break muted', title: 'its webhook-id header', 'data-testid': 'delivery-event-id' }, d.event_id),
          d.payload
            ? h('details', null, h('summary', null, 'Payload'), h('pre', { class: 'json', tabindex: '0', 'data-testid': 'delivery-payload' }, JSON.stringify(d.payload, null, 2)))
            : null,
        ),
        h(
          'td',
          { 'data-testid': 'delivery-status' },
          deliveryBadge(d.status),
          d.status === 'pending' && d.next_attempt_at ? h('div', { class: 'muted small' }, `next try ${fmtTime(d.next_attempt_at)}`) : null,
        ),
        h('td', { 'data-testid': 'delivery-attempts' }, String(d.attempts)),
        h(
          'td',
          null,
          h('span', { 'data-testid': 'delivery-last-status' }, d.last_status ?? '—'),
          d.last_error ? h('div', { class: 'small error-text', 'data-testid': 'delivery-last-error' }, d.last_error) : null,
        ),
        h(
          'td',
          { class: 'row-actions' },
          d.status === 'failed'
            ? h('button', { type: 'button', class: 'secondary small', 'data-testid': 'delivery-redeliver', onClick: (e) => redeliver(d, e.currentTarget) }, 'Redeliver')
            : null,
        ),
      ),
  });

  async function redeliver(d, button) {
    await busy(button, slot, async () => {
      await api.webhooks.redeliver(w.id, d.id);
      mount(slot, notice(`The ${d.event_type} event is queued again for ${w.url}.`, 'success', 'delivery-requeued'));
      list.reload();
    });
  }

  const refresh = h('button', { type: 'button', class: 'secondary', 'data-testid': 'deliveries-refresh', onClick: () => list.reload() }, 'Refresh');
  el = h(
    'section',
    { class: 'detail-panel', 'aria-labelledby': titleId },
    h('h3', { id: titleId }, `Deliveries to ${w.url}`),
    filterBar([field('Status', status), refresh], () => list.reload(true), `Filter the deliveries to ${w.url}`),
    slot,
    list.el,
  );
  return { el, reload: list.reload };
}

export async function render(root, ctx) {
  const admin = ctx.user.role === 'admin';
  const out = h('div', { 'aria-live': 'polite' });

  // The endpoints whose delivery log is open; kept open across reloads.
  const openPanels = new Set();
  // The open logs by endpoint id, and how to open one (for the row's test event).
  const panels = new Map();
  const openers = new Map();

  /** Opens or closes the delivery log under an endpoint's row. */
  function setPanel(w, tr, button, open) {
    const existing = button.getAttribute('aria-controls') ? document.getElementById(button.getAttribute('aria-controls')) : null;
    existing?.remove();
    panels.delete(w.id);
    button.setAttribute('aria-expanded', String(open));
    button.removeAttribute('aria-controls');
    if (!open) {
      openPanels.delete(w.id);
      return;
    }
    openPanels.add(w.id);
    const panelId = uid('webhook-deliveries');
    const panel = deliveryLog(w);
    tr.after(
      h(
        'tr',
        { id: panelId, class: 'detail-row', 'data-testid': 'webhook-deliveries', 'data-id': w.id },
        h('td', { colspan: HEADERS.length, class: 'detail' }, panel.el),
      ),
    );
    button.setAttribute('aria-controls', panelId);
    panels.set(w.id, panel);
    panel.reload();
  }

  const list = listView({
    noun: 'webhooks',
    testid: 'webhooks-list',
    headers: HEADERS,
    empty: 'No webhooks yet.',
    load: (q) => api.webhooks.list(q),
    row: (w) => {
      const logButton = h(
        'button',
        {
          type: 'button',
          class: 'secondary small',
          'aria-expanded': 'false',
          'aria-label': `Deliveries to ${w.url}`,
          'data-testid': 'webhook-deliveries-toggle',
          onClick: () => setPanel(w, tr, logButton, logButton.getAttribute('aria-expanded') !== 'true'),
        },
        'Deliveries',
      );
      const tr = h(
        'tr',
        { 'data-testid': 'webhook-row', 'data-id': w.id, 'data-url': w.url, 'data-enterprise': w.enterprise ?? '', 'data-active': String(w.is_active) },
        h('td', null, h('strong', { class: 'mono small break' }, w.url), w.description ? h('div', { class: 'muted small' }, w.description) : null),
        h('td', { 'data-testid': 'webhook-row-events' }, w.events.map((e) => h('div', { class: 'mono small' }, e))),
        h('td', { 'data-testid': 'webhook-row-enterprise' }, w.enterprise ?? h('span', { class: 'muted' }, 'all')),
        h('td', { 'data-testid': 'webhook-row-status' }, statusBadge(w)),
        h('td', null, fmtDate(w.created_at), h('div', { class: 'muted small' }, `by ${w.created_by}`)),
        h(
          'td',
          { class: 'row-actions' },
          logButton,
          h('button', { type: 'button', class: 'secondary small', 'data-testid': 'webhook-test', onClick: (e) => sendTest(w, e.currentTarget) }, 'Send test event'),
          h('button', { type: 'button', class: 'secondary small', 'data-testid': 'webhook-toggle', onClick: () => toggle(w) }, w.is_active ? 'Pause' : 'Resume'),
          h('button', { type: 'button', class: 'secondary small', 'data-testid': 'webhook-rotate', onClick: () => rotate(w) }, 'Rotate secret'),
          h('button', { type: 'button', class: 'danger small', 'data-testid': 'webhook-delete', onClick: () => remove(w) }, 'Delete'),
        ),
      );
      openers.set(w.id, () => setPanel(w, tr, logButton, true));
      // Reopened after a reload (once the row is in the table).
      if (openPanels.has(w.id)) queueMicrotask(() => tr.isConnected && setPanel(w, tr, logButton, true));
      return tr;
    },
  });

  async function sendTest(w, button) {
    await busy(button, out, async () => {
      await api.webhooks.test(w.id);
      mount(out, notice(`A webhook.test event is queued for ${w.url}; its delivery log shows how it went.`, 'success', 'webhook-test-queued'));
      // Its delivery log, open (or read again) to follow the delivery.
      const panel = panels.get(w.id);
      if (panel) panel.reload();
      else openers.get(w.id)?.();
    });
  }

  async function toggle(w) {
    try {
      const res = await api.webhooks.patch(w.id, { is_active: !w.is_active });
      mount(out, notice(res.is_active ? `${res.url} is active again.` : `${res.url} is paused: it gets no new events.`));
      list.reload();
    } catch (err) {
      mount(out, errorBox(err, LABELS));
    }
  }

  async function rotate(w) {
    const ok = await confirmDialog({
      title: 'Rotate the signing secret?',
      content: [
        h('p', { class: 'mono small break' }, w.url),
        h('p', null, 'Deliveries are signed with the new secret at once: the receiver refuses them until it has the new one.'),
      ],
      confirmLabel: 'Rotate secret',
    });
    if (!ok) return;
    try {
      const res = await api.webhooks.rotateSecret(w.id);
      mount(out, secretPanel(res, 'has a new signing secret'));
      out.scrollIntoView({ block: 'nearest' });
    } catch (err) {
      mount(out, errorBox(err, LABELS));
    }
  }

  async function remove(w) {
    const ok = await confirmDialog({
      title: 'Delete this webhook?',
      content: [
        h('p', { class: 'mono small break' }, w.url),
        h('p', null, 'fleetca stops sending it events, and its delivery log is deleted. This cannot be undone.'),
      ],
      confirmLabel: 'Delete webhook',
      danger: true,
    });
    if (!ok) return;
    try {
      await api.webhooks.remove(w.id);
      openPanels.delete(w.id);
      mount(out, notice(`The webhook for ${w.url} was deleted.`));
      list.reload();
    } catch (err) {
      mount(out, errorBox(err, LABELS));
    }
  }

  // Create.
  const url = h('input', { type: 'url', name: 'url', required: true, maxlength: 2048, placeholder: 'https://hooks.example.com/fleetca', autocapitalize: 'none', spellcheck: 'false', class: 'mono', 'data-testid': 'webhook-url' });
  const description = h('input', { name: 'description', maxlength: 200, 'data-testid': 'webhook-description' });
  const enterprise = admin ? h('input', { name: 'enterprise', placeholder: 'all enterprises', autocapitalize: 'none', spellcheck: 'false', 'data-testid': 'webhook-enterprise' }) : null;
  const events = eventControls(admin);
  enterprise?.addEventListener('input', () => events.scope(enterprise.value.trim()));
  const slot = h('div', { 'aria-live': 'polite' });
  const btn = h('button', { type: 'submit', 'data-testid': 'webhook-create' }, 'Create webhook');
  const form = h(
    'form',
    {
      class: 'card',
      'aria-labelledby': 'create-webhook-title',
      onSubmit: (e) => {
        e.preventDefault();
        busy(btn, slot, async () => {
          const body = { url: url.value.trim(), events: events.value() };
          if (description.value.trim()) body.description = description.value.trim();
          if (enterprise && enterprise.value.trim()) body.enterprise = enterprise.value.trim();
          try {
            const res = await api.webhooks.create(body);
            mount(out, secretPanel(res, 'created'));
            form.reset();
            events.scope('');
            list.reload(true);
            out.scrollIntoView({ block: 'nearest' });
          } catch (err) {
            mount(slot, errorBox(err, LABELS));
          }
        });
      },
    },
    h('h2', { id: 'create-webhook-title' }, 'New webhook'),
    h(
      'div',
      { class: 'row' },
      field('URL', url, 'where fleetca POSTs the events; on a public address'),
      field('Description', description, 'optional'),
      enterprise ? field('Enterprise', enterprise, 'empty: every enterprise’s events, and fleetca’s own') : null,
    ),
    events.el,
    slot,
    h('div', { class: 'actions' }, btn),
  );

  const scope = admin ? 'every enterprise' : `enterprise ${ctx.user.enterprise}`;
  root.append(
    ...heading('Webhooks', `URLs that fleetca POSTs events of ${scope} to, signed as Standard Webhooks; a failed delivery is retried with backoff.`),
    form,
    out,
    h('div', { class: 'card' }, h('h2', null, 'All webhooks'), list.el),
  );
  await list.reload();
}
