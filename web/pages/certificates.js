// MQTT client certificates: list, create (PEMs shown once, with downloads), CSR upload,
// revoke with a reason.

import * as api from '../api.js';
import { h, mount, field, select, fmtDate, heading, badge, busy, confirmDialog, notice, errorBox, listView, filterBar, secretField, downloadText, copyButton, uid } from '../ui.js';

export const title = 'Certificates';

const LABELS = { name: 'Name', api_key_id: 'API key', validity_hours: 'Validity', csr_pem: 'CSR' };

// Labels for the reason names the server accepts (it says which: GET /api/v4/manage/settings/).
const REASON_LABELS = {
  unspecified: 'Unspecified',
  keyCompromise: 'Key compromise',
  superseded: 'Superseded',
  cessationOfOperation: 'Cessation of operation',
  affiliationChanged: 'Affiliation changed',
  privilegeWithdrawn: 'Privilege withdrawn',
  cACompromise: 'CA compromise',
  aACompromise: 'AA compromise',
};

export function reasonOptions(names) {
  return names.map((n) => [n, REASON_LABELS[n] || n]);
}

// The first topic pattern the server lets an API key subscribe to, filled in for this key.
export function subscribeTopic(settings, key) {
  const rule = (settings.acl_api_key || []).find((r) => r.access.includes('subscribe'));
  if (!rule || !key) return '#';
  return rule.pattern.replaceAll('{enterprise}', key.enterprise).replaceAll('{username}', key.username).replaceAll('{clientid}', key.username);
}

function createdPanel(cert, key, settings) {
  const host = location.hostname || 'localhost';
  const topic = subscribeTopic(settings, key);
  const files = [
    ['client.crt', cert.certificate_pem, 'download-client-crt'],
    cert.private_key_pem ? ['client.key', cert.private_key_pem, 'download-client-key'] : null,
    ['ca.crt', cert.ca_certificate_pem, 'download-ca-crt'],
  ].filter(Boolean);
  const cmd = `mosquitto_sub -h ${host} -p 8883 --cafile ca.crt --cert client.crt --key client.key -t '${topic}' -v`;
  return h(
    'div',
    { class: 'card once', 'data-testid': 'cert-created' },
    h('h2', null, `Certificate “${cert.name}” created`),
    cert.private_key_pem
      ? h('p', { class: 'warning' }, h('strong', null, 'Download the private key now: you will not see it again.'), ' fleetca does not keep it.')
      : h('p', null, 'Signed from your CSR; the private key stayed with you.'),
    h(
      'div',
      { class: 'actions left' },
      files.map(([name, pem, testid]) =>
        h('button', { type: 'button', 'data-testid': testid, onClick: () => downloadText(name, pem) }, `Download ${name}`),
      ),
    ),
    h('p', { class: 'muted' }, `Serial ${cert.serial} · expires ${fmtDate(cert.expires_at)}`),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'mosquitto-cmd' }, 'Connect with mosquitto_sub'),
      h('pre', { id: 'mosquitto-cmd', class: 'mono cmd', 'data-testid': 'mosquitto-cmd', tabindex: '0' }, cmd),
      copyButton(cmd, 'Copy command'),
    ),
    h(
      'details',
      null,
      h('summary', null, 'Show the PEMs'),
      secretField('Certificate (client.crt)', cert.certificate_pem, 'pem-cert', { multiline: true }),
      cert.private_key_pem ? secretField('Private key (client.key)', cert.private_key_pem, 'pem-key', { multiline: true }) : null,
      secretField('CA certificate (ca.crt)', cert.ca_certificate_pem, 'pem-ca', { multiline: true }),
    ),
  );
}

export async function render(root, ctx) {
  const [keysPage, settings] = await Promise.all([api.users.list({ is_service_account: true, page_size: 500 }), api.overview.settings()]);
  if (!ctx.isCurrent()) return;
  const keys = keysPage.results;
  const keyById = new Map(keys.map((k) => [k.id, k]));
  const keyLabel = (k) => (ctx.user.role === 'admin' ? `${k.username} (${k.enterprise})` : k.username);
  const out = h('div', { 'aria-live': 'polite' });

  // Filters and list.
  const search = h('input', { type: 'search', name: 'search', placeholder: 'name contains…', 'data-testid': 'certs-search' });
  const keyFilter = select({ name: 'api_key_id', 'data-testid': 'certs-key' }, [['', 'All keys'], ...keys.map((k) => [k.id, keyLabel(k)])]);
  const statusFilter = select({ name: 'status', 'data-testid': 'certs-status' }, [['', 'Any status'], ['active', 'Active'], ['revoked', 'Revoked'], ['expired', 'Expired']]);

  const list = listView({
    noun: 'certificates',
    testid: 'certs-list',
    headers: ['Name', 'API key', 'Serial', 'Status', 'Expires', 'Actions'],
    load: (q) => api.certificates.list(q),
    filters: () => ({ search: search.value.trim(), api_key_id: keyFilter.value, status: statusFilter.value }),
    row: (c) =>
      h(
        'tr',
        { 'data-testid': 'cert-row', 'data-name': c.name, 'data-status': c.status },
        h('td', null, h('strong', null, c.name)),
        h('td', null, keyById.get(c.api_key_id)?.username || c.api_key_id || '—'),
        h('td', { class: 'mono small', title: c.serial }, c.serial.length > 16 ? `${c.serial.slice(0, 16)}…` : c.serial),
        h('td', null, badge(c.status), c.reason ? h('div', { class: 'muted small' }, c.reason) : null),
        h('td', null, fmtDate(c.expires_at)),
        h(
          'td',
          { class: 'row-actions' },
          h('button', { type: 'button', class: 'secondary small', onClick: () => downloadOne(c) }, 'client.crt'),
          c.status === 'active'
            ? h('button', { type: 'button', class: 'danger small', 'data-testid': 'cert-revoke', onClick: () => revoke(c) }, 'Revoke')
            : null,
        ),
      ),
  });

  async function downloadOne(c) {
    try {
      const full = await api.certificates.get(c.id);
      downloadText('client.crt', full.certificate_pem);
    } catch (err) {
      mount(out, errorBox(err));
    }
  }

  async function revoke(c) {
    const reasonId = uid('reason');
    const data = await confirmDialog({
      title: `Revoke “${c.name}”?`,
      testid: 'revoke-dialog',
      confirmLabel: 'Revoke certificate',
      danger: true,
      content: [
        h('p', null, `Serial ${c.serial}. Clients using it are refused once the broker has the new CRL. This cannot be undone.`),
        h('div', { class: 'field' }, h('label', { for: reasonId }, 'Reason'), select({ id: reasonId, name: 'reason', 'data-testid': 'revoke-reason' }, reasonOptions(settings.revocation_reasons), 'unspecified')),
      ],
    });
    if (!data) return;
    try {
      const res = await api.certificates.revoke(c.id, data.get('reason'));
      mount(out, notice(`“${res.name}” was revoked (${res.reason}); the new CRL is published.`, 'success', 'revoked-notice'));
      list.reload();
    } catch (err) {
      mount(out, errorBox(err, LABELS));
    }
  }

  // Create.
  const activeKeys = keys.filter((k) => k.is_active);
  const name = h('input', { name: 'name', required: true, maxlength: 200, 'data-testid': 'cert-name' });
  const keySelect = select({ name: 'api_key_id', required: true, 'data-testid': 'cert-key' }, [['', activeKeys.length ? 'Choose an API key…' : 'Create an API key first'], ...activeKeys.map((k) => [k.id, keyLabel(k)])]);
  const years = select({ name: 'years', 'data-testid': 'cert-years' }, Array.from({ length: 10 }, (_, i) => [i + 1, `${i + 1} year${i ? 's' : ''}`]), 1);
  const csr = h('textarea', { name: 'csr_pem', rows: 6, spellcheck: 'false', placeholder: '-----BEGIN CERTIFICATE REQUEST-----', 'data-testid': 'cert-csr' });
  const csrFile = h('input', { type: 'file', accept: '.csr,.pem,.req,text/plain', 'data-testid': 'cert-csr-file' });
  csrFile.addEventListener('change', async () => {
    const f = csrFile.files[0];
    if (f) csr.value = await f.text();
  });
  const modeName = uid('mode');
  const modeGen = h('input', { type: 'radio', name: modeName, value: 'generate', checked: true, 'data-testid': 'cert-mode-generate' });
  const modeCsr = h('input', { type: 'radio', name: modeName, value: 'csr', 'data-testid': 'cert-mode-csr' });
  const csrBox = h('fieldset', { class: 'sub', hidden: true }, h('legend', null, 'Certificate signing request (PEM, P-256)'), field('Upload a CSR file', csrFile), field('or paste it', csr));
  const syncMode = () => {
    csrBox.hidden = !modeCsr.checked;
    csr.required = modeCsr.checked;
  };
  modeGen.addEventListener('change', syncMode);
  modeCsr.addEventListener('change', syncMode);

  const createSlot = h('div', { 'aria-live': 'polite' });
  const createBtn = h('button', { type: 'submit', 'data-testid': 'cert-create' }, 'Create certificate');
  const form = h(
    'form',
    {
      class: 'card',
      'aria-labelledby': 'create-cert-title',
      onSubmit: (e) => {
        e.preventDefault();
        busy(createBtn, createSlot, async () => {
          const body = {
            name: name.value.trim(),
            api_key_id: keySelect.value,
            validity_hours: 8760 * Number(years.value),
          };
          if (modeCsr.checked) body.csr_pem = csr.value.trim();
          try {
            const res = await api.certificates.create(body);
            mount(out, createdPanel(res, keyById.get(res.api_key_id), settings));
            form.reset();
            syncMode();
            list.reload(true);
            out.scrollIntoView({ block: 'nearest' });
          } catch (err) {
            mount(createSlot, errorBox(err, LABELS));
          }
        });
      },
    },
    h('h2', { id: 'create-cert-title' }, 'New client certificate'),
    h('div', { class: 'row' }, field('Name', name), field('API key', keySelect), field('Validity', years)),
    h(
      'fieldset',
      { class: 'radios' },
      h('legend', null, 'Private key'),
      h('label', null, modeGen, ' Generate a key pair (the key is shown once)'),
      h('label', null, modeCsr, ' Sign my CSR (the key never leaves my device)'),
    ),
    csrBox,
    createSlot,
    h('div', { class: 'actions' }, createBtn),
  );

  root.append(
    ...heading('Certificates', 'MQTT client certificates, each bound to an API key.'),
    form,
    out,
    h(
      'div',
      { class: 'card' },
      h('h2', null, 'All certificates'),
      filterBar([field('Search', search), field('API key', keyFilter), field('Status', statusFilter)], () => list.reload(true), 'Filter certificates'),
      list.el,
    ),
  );
  await list.reload();
}
