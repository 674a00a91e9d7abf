// Devices: list, provision one, bulk provision from CSV (errors mapped to CSV lines),
// rotate credentials, enable/disable, delete (both of the last revoke the device's
// certificates), and each device's certificates (enrolled over EST) in a panel under its
// row, with revoke.

import * as api from '../api.js';
import { h, mount, field, select, fmtDate, heading, badge, busy, confirmDialog, notice, errorBox, listView, filterBar, secretField, downloadText, uid, table } from '../ui.js';
import { devicesFromCsv, rowProblems, csvCell, DEVICE_COLUMNS } from '../csv.js';
import { askRevokeReason, serialCell, statusCell } from './certificates.js';

export const title = 'Devices';

const LABELS = { device_id: 'Device ID', tenant: 'Tenant', password: 'Password', ha1: 'HA1', realm: 'Realm', description: 'Description' };

/** Radio buttons for generate / password / HA1 and their inputs. */
function credentialControls(prefix) {
  const name = uid('cred');
  const radios = ['generate', 'password', 'ha1'].map((v) =>
    h('input', { type: 'radio', name, value: v, checked: v === 'generate', 'data-testid': `${prefix}-cred-${v}` }),
  );
  const password = h('input', { name: 'password', type: 'text', autocomplete: 'new-password', minlength: 8, maxlength: 256, spellcheck: 'false', 'data-testid': `${prefix}-password` });
  const ha1 = h('input', { name: 'ha1', maxlength: 32, spellcheck: 'false', class: 'mono', placeholder: '32 hex characters', 'data-testid': `${prefix}-ha1` });
  const pwField = field('Password', password, '8–256 characters; only its HA1 is stored');
  const ha1Field = field('HA1', ha1, 'MD5(device_id:realm:password), hex');
  const sync = () => {
    const mode = radios.find((r) => r.checked).value;
    pwField.hidden = mode !== 'password';
    ha1Field.hidden = mode !== 'ha1';
    password.required = mode === 'password';
    ha1.required = mode === 'ha1';
  };
  radios.forEach((r) => r.addEventListener('change', sync));
  sync();
  const el = h(
    'div',
    null,
    h(
      'fieldset',
      { class: 'radios' },
      h('legend', null, 'Credentials'),
      h('label', null, radios[0], ' Generate a password'),
      h('label', null, radios[1], ' Set a password'),
      h('label', null, radios[2], ' Give an HA1'),
    ),
    h('div', { class: 'row' }, pwField, ha1Field),
  );
  const value = () => {
    const mode = radios.find((r) => r.checked).value;
    if (mode === 'password') return { password: password.value };
    if (mode === 'ha1') return { ha1: ha1.value.trim() };
    return {};
  };
  return { el, value, reset: () => { radios[0].checked = true; sync(); } };
}

function provisionedPanel(d, verb) {
  return h(
    'div',
    { class: 'card once', 'data-testid': 'device-provisioned' },
    h('h2', null, `Device ${d.device_id} ${verb}`),
    secretField('MQTT username', d.mqtt_username, 'device-mqtt-username'),
    d.password
      ? [
          h('p', { class: 'warning' }, h('strong', null, 'Copy the password now: you will not see it again.'), ' fleetca stores only its HA1.'),
          secretField('Password', d.password, 'device-new-password'),
          secretField('HA1', d.ha1, 'device-new-ha1'),
        ]
      : h('p', null, 'The credentials you gave are stored as an HA1.'),
  );
}

/**
 * A device's certificates: a paged table with a revoke action per active certificate.
 * `reasons()` resolves to the revocation reason names the server accepts.
 */
function deviceCertificates(d, reasons) {
  const titleId = uid('device-certs-title');
  const slot = h('div', { 'aria-live': 'polite' });
  const list = listView({
    noun: 'certificates',
    testid: 'device-certs-list',
    pageSize: 10,
    quiet: true,
    pagerLabel: `Pages of the certificates of ${d.device_id}`,
    empty: `${d.device_id} has no certificates: a device gets one by enrolling over EST.`,
    headers: ['Name', 'Serial', 'Status', 'Issued', 'Expires', 'Actions'],
    load: (q) => api.devices.certificates(d, q),
    row: (c) =>
      h(
        'tr',
        { 'data-testid': 'device-cert-row', 'data-id': c.id, 'data-status': c.status },
        h('td', null, c.name),
        serialCell(c.serial),
        statusCell(c),
        h('td', null, fmtDate(c.created_at)),
        h('td', null, fmtDate(c.expires_at)),
        h(
          'td',
          { class: 'row-actions' },
          c.status === 'active'
            ? h('button', { type: 'button', class: 'danger small', 'data-testid': 'device-cert-revoke', onClick: () => revoke(c) }, 'Revoke')
            : null,
        ),
      ),
  });

  async function revoke(c) {
    try {
      const reason = await askRevokeReason(c, await reasons(), `this certificate of ${d.device_id}`);
      if (!reason) return;
      const res = await api.devices.revokeCertificate(d, c.id, reason);
      mount(slot, notice(`The certificate ${res.serial} of ${d.device_id} was revoked (${res.reason}); the new CRL is published.`, 'success', 'device-cert-revoked'));
      list.reload();
    } catch (err) {
      mount(slot, errorBox(err));
    }
  }

  const el = h(
    'section',
    { class: 'detail-panel', 'aria-labelledby': titleId },
    h('h3', { id: titleId }, `Certificates of ${d.device_id}`),
    slot,
    list.el,
  );
  return { el, reload: list.reload };
}

export async function render(root, ctx) {
  const admin = ctx.user.role === 'admin';
  const out = h('div', { 'aria-live': 'polite' });

  // The revocation reasons, fetched when first needed.
  let reasonsPromise = null;
  const reasons = () => {
    reasonsPromise ||= api.overview.settings().then((s) => s.revocation_reasons, (err) => {
      reasonsPromise = null;
      throw err;
    });
    return reasonsPromise;
  };

  // The devices whose certificates panel is open ("tenant/device_id"); kept open across reloads.
  const openPanels = new Set();
  const HEADERS = ['Device ID', 'Tenant', 'MQTT username', 'Status', 'Created', 'Actions'];

  /** Opens or closes the certificates panel under a device's row. */
  function setPanel(d, tr, button, open) {
    const key = `${d.tenant}/${d.device_id}`;
    const existing = button.getAttribute('aria-controls') ? document.getElementById(button.getAttribute('aria-controls')) : null;
    existing?.remove();
    button.setAttribute('aria-expanded', String(open));
    button.removeAttribute('aria-controls');
    if (!open) {
      openPanels.delete(key);
      return;
    }
    openPanels.add(key);
    const panelId = uid('device-certs');
    const panel = deviceCertificates(d, reasons);
    tr.after(
      h(
        'tr',
        { id: panelId, class: 'detail-row', 'data-testid': 'device-certs', 'data-device-id': d.device_id, 'data-tenant': d.tenant },
        h('td', { colspan: HEADERS.length, class: 'detail' }, panel.el),
      ),
    );
    button.setAttribute('aria-controls', panelId);
    panel.reload();
  }

  // List.
  const search = h('input', { type: 'search', name: 'search', placeholder: 'device ID contains…', 'data-testid': 'devices-search' });
  const tenantFilter = h('input', { name: 'tenant', placeholder: admin ? 'any' : ctx.user.enterprise, autocapitalize: 'none', spellcheck: 'false', 'data-testid': 'devices-tenant' });
  const activeFilter = select({ name: 'is_active', 'data-testid': 'devices-status' }, [['', 'All'], ['true', 'Enabled'], ['false', 'Disabled']]);
  const list = listView({
    noun: 'devices',
    testid: 'devices-list',
    headers: HEADERS,
    load: (q) => api.devices.list(q),
    filters: () => ({ search: search.value.trim(), tenant: tenantFilter.value.trim(), is_active: activeFilter.value }),
    row: (d) => {
      const certsButton = h('button', { type: 'button', class: 'secondary small', 'aria-expanded': 'false', 'data-testid': 'device-certs-toggle', onClick: () => setPanel(d, tr, certsButton, certsButton.getAttribute('aria-expanded') !== 'true') }, 'Certificates');
      const tr = h(
        'tr',
        { 'data-testid': 'device-row', 'data-device-id': d.device_id, 'data-tenant': d.tenant },
        h('td', null, h('strong', null, d.device_id), d.description ? h('div', { class: 'muted small' }, d.description) : null),
        h('td', null, d.tenant),
        h('td', { class: 'mono small', 'data-testid': 'device-row-username' }, d.mqtt_username),
        h('td', null, d.is_active ? badge('enabled', 'active') : badge('disabled', 'revoked')),
        h('td', null, fmtDate(d.created_at)),
        h(
          'td',
          { class: 'row-actions' },
          certsButton,
          h('button', { type: 'button', class: 'secondary small', 'data-testid': 'device-rotate', onClick: () => rotate(d) }, 'Rotate credentials'),
          h('button', { type: 'button', class: 'secondary small', 'data-testid': 'device-toggle', onClick: () => toggle(d) }, d.is_active ? 'Disable' : 'Enable'),
          h('button', { type: 'button', class: 'danger small', 'data-testid': 'device-delete', onClick: () => remove(d) }, 'Delete'),
        ),
      );
      // Reopened after a reload (once the row is in the table).
      if (openPanels.has(`${d.tenant}/${d.device_id}`)) queueMicrotask(() => tr.isConnected && setPanel(d, tr, certsButton, true));
      return tr;
    },
  });

  async function toggle(d) {
    if (d.is_active) {
      const ok = await confirmDialog({
        title: `Disable ${d.device_id}?`,
        content: h('p', null, 'The device can no longer connect, and its certificates are revoked (privilege withdrawn). Enabling it again does not bring them back: it enrolls anew.'),
        confirmLabel: 'Disable device',
        danger: true,
      });
      if (!ok) return;
    }
    try {
      const res = await api.devices.patch(d, { is_active: !d.is_active });
      mount(out, notice(`${res.device_id} is ${res.is_active ? 'enabled' : 'disabled; its certificates are revoked'}.`));
      list.reload();
    } catch (err) {
      mount(out, errorBox(err, LABELS));
    }
  }

  async function remove(d) {
    const ok = await confirmDialog({
      title: `Delete ${d.device_id}?`,
      content: h('p', null, `The device is removed from tenant ${d.tenant} and can no longer connect; its certificates are revoked. This cannot be undone.`),
      confirmLabel: 'Delete device',
      danger: true,
    });
    if (!ok) return;
    try {
      await api.devices.remove(d);
      openPanels.delete(`${d.tenant}/${d.device_id}`);
      mount(out, notice(`${d.device_id} was deleted; its certificates are revoked.`));
      list.reload();
    } catch (err) {
      mount(out, errorBox(err, LABELS));
    }
  }

  async function rotate(d) {
    const cred = credentialControls('rotate');
    const realm = h('input', { name: 'realm', placeholder: d.realm, 'data-testid': 'rotate-realm' });
    const data = await confirmDialog({
      title: `New credentials for ${d.device_id}`,
      testid: 'rotate-dialog',
      confirmLabel: 'Rotate credentials',
      content: [h('p', null, 'The old credentials stop working at once.'), cred.el, field('Realm', realm, `leave empty to keep ${d.realm}`)],
    });
    if (!data) return;
    try {
      const body = cred.value();
      if (realm.value.trim()) body.realm = realm.value.trim();
      const res = await api.devices.rotate(d, body);
      mount(out, provisionedPanel(res, 'has new credentials'));
      out.scrollIntoView({ block: 'nearest' });
    } catch (err) {
      mount(out, errorBox(err, LABELS));
    }
  }

  // Provision one.
  const deviceId = h('input', { name: 'device_id', required: true, maxlength: 128, autocapitalize: 'none', spellcheck: 'false', 'data-testid': 'device-id' });
  const tenant = h('input', { name: 'tenant', required: true, value: ctx.user.enterprise, autocapitalize: 'none', spellcheck: 'false', 'data-testid': 'device-tenant' });
  const realm = h('input', { name: 'realm', maxlength: 128, placeholder: 'the tenant', 'data-testid': 'device-realm' });
  const description = h('input', { name: 'description', maxlength: 500, 'data-testid': 'device-description' });
  const cred = credentialControls('device');
  const slot = h('div', { 'aria-live': 'polite' });
  const btn = h('button', { type: 'submit', 'data-testid': 'device-create' }, 'Provision device');
  const form = h(
    'form',
    {
      class: 'card',
      'aria-labelledby': 'provision-title',
      onSubmit: (e) => {
        e.preventDefault();
        busy(btn, slot, async () => {
          const body = { device_id: deviceId.value.trim(), tenant: tenant.value.trim(), ...cred.value() };
          if (realm.value.trim()) body.realm = realm.value.trim();
          if (description.value.trim()) body.description = description.value.trim();
          try {
            const res = await api.devices.create(body);
            mount(out, provisionedPanel(res, 'provisioned'));
            form.reset();
            cred.reset();
            list.reload(true);
            out.scrollIntoView({ block: 'nearest' });
          } catch (err) {
            mount(slot, errorBox(err, LABELS));
          }
        });
      },
    },
    h('h2', { id: 'provision-title' }, 'Provision a device'),
    h('div', { class: 'row' }, field('Device ID', deviceId, 'A–Z, a–z, 0–9, ".", "_", ":" and "-"'), field('Tenant', tenant), field('Realm', realm, 'optional'), field('Description', description, 'optional')),
    cred.el,
    slot,
    h('div', { class: 'actions' }, btn),
  );

  root.append(
    ...heading('Devices', 'Devices that sign in to the broker with a digest password.'),
    form,
    bulkForm(() => list.reload(true)),
    out,
    h(
      'div',
      { class: 'card' },
      h('h2', null, 'All devices'),
      filterBar([field('Search', search), field('Tenant', tenantFilter), field('Status', activeFilter)], () => list.reload(true), 'Filter devices'),
      list.el,
    ),
  );
  await list.reload();
}

/** Bulk provisioning from a CSV file. */
function bulkForm(onCreated) {
  const file = h('input', { type: 'file', accept: '.csv,text/csv', required: true, 'data-testid': 'bulk-file' });
  const report = h('div', { 'aria-live': 'polite', 'data-testid': 'bulk-report' });
  const btn = h('button', { type: 'submit', 'data-testid': 'bulk-upload' }, 'Upload and provision');

  function problemTable(problems, rows, lines) {
    const sorted = [...problems].sort((a, b) => a.line - b.line);
    return table(
      ['CSV line', 'Device ID', 'Column', 'Problem'],
      sorted.map((p) =>
        h(
          'tr',
          { 'data-testid': 'bulk-error', 'data-line': p.line },
          h('td', null, String(p.line)),
          h('td', null, p.row !== undefined ? rows[p.row]?.device_id || '' : ''),
          h('td', null, p.field),
          h('td', null, p.message),
        ),
      ),
    );
  }

  const form = h(
    'form',
    {
      class: 'card',
      'aria-labelledby': 'bulk-title',
      onSubmit: (e) => {
        e.preventDefault();
        busy(btn, report, async () => {
          const f = file.files[0];
          if (!f) return;
          let parsed;
          try {
            parsed = devicesFromCsv(await f.text());
          } catch (err) {
            mount(report, errorBox({ detail: `${f.name}: ${err.message}` }));
            return;
          }
          const { rows, lines, problems } = parsed;
          if (problems.length) {
            mount(report, errorBox({ detail: `${f.name} cannot be sent; nothing was written.` }), problemTable(problems, rows, lines));
            return;
          }
          try {
            const res = await api.devices.bulk(rows);
            const generated = res.results.filter((d) => d.password);
            mount(
              report,
              notice(`Provisioned ${res.created} device${res.created === 1 ? '' : 's'} from ${f.name}.`, 'success', 'bulk-success'),
              generated.length
                ? h(
                    'p',
                    { class: 'warning' },
                    h('strong', null, `${generated.length} generated password${generated.length === 1 ? ' is' : 's are'} shown only now. `),
                    h(
                      'button',
                      {
                        type: 'button',
                        'data-testid': 'bulk-download',
                        onClick: () =>
                          downloadText(
                            'devices-credentials.csv',
                            ['device_id,tenant,mqtt_username,password,ha1', ...generated.map((d) => [d.device_id, d.tenant, d.mqtt_username, d.password, d.ha1].map(csvCell).join(','))].join('\r\n') + '\r\n',
                            'text/csv',
                          ),
                      },
                      'Download them as CSV',
                    ),
                  )
                : null,
            );
            form.reset();
            onCreated();
          } catch (err) {
            const problemsByLine = rowProblems(err.errors, lines);
            if (!problemsByLine.length) {
              mount(report, errorBox(err));
              return;
            }
            // The API keys errors by array index; the table shows CSV lines instead.
            const bad = new Set(problemsByLine.map((p) => p.line)).size;
            mount(
              report,
              errorBox({ detail: `${f.name}: ${bad} line${bad === 1 ? ' has' : 's have'} problems. Nothing was written.` }),
              h('p', null, 'Fix these lines and upload the file again.'),
              problemTable(problemsByLine, rows, lines),
            );
          }
        });
      },
    },
    h('h2', { id: 'bulk-title' }, 'Bulk provision from CSV'),
    h('p', null, 'The first line names the columns: ', h('code', null, DEVICE_COLUMNS.join(',')), '. Leave password and ha1 empty to have a password generated. All rows are written, or none.'),
    field('CSV file', file),
    report,
    h('div', { class: 'actions' }, btn),
  );
  return form;
}
