// MQTT certificates: list (client, device or claim; by status and by expiry), create a
// client certificate (PEMs shown once, with downloads), CSR upload, renew (the new key
// shown once, the old certificate superseded after the grace), revoke with a reason.

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

/**
 * What a just-issued certificate shows once: a download button per PEM (the private key can
 * be had only now), then `extra`, then each PEM with a copy button behind a disclosure.
 * `files`: [{name, pem, testid, label, pemTestid, key}]; entries without a pem are left out.
 * Shared by new and renewed client certificates and new claims.
 */
export function issuedPanel({ testid, title, files, notes = [], extra = [] }) {
  const present = files.filter((f) => f.pem);
  const hasKey = present.some((f) => f.key);
  return h(
    'div',
    { class: 'card once', 'data-testid': testid },
    h('h2', null, title),
    hasKey
      ? h('p', { class: 'warning' }, h('strong', null, 'Download the private key now: you will not see it again.'), ' fleetca does not keep it.')
      : h('p', null, 'Signed from your CSR; the private key stayed with you.'),
    notes,
    h(
      'div',
      { class: 'actions left' },
      present.map((f) => h('button', { type: 'button', 'data-testid': f.testid, onClick: () => downloadText(f.name, f.pem) }, `Download ${f.name}`)),
    ),
    extra,
    h(
      'details',
      null,
      h('summary', null, 'Show the PEMs'),
      present.map((f) => secretField(f.label, f.pem, f.pemTestid, { multiline: true })),
    ),
  );
}

/**
 * A new (or renewed) client certificate. `old` is the certificate a renewal replaces, as
 * the API shows it after the renewal (with its supersede_at).
 */
function createdPanel(cert, key, settings, { renewed = false, old = null } = {}) {
  const host = location.hostname || 'localhost';
  const topic = subscribeTopic(settings, key);
  const cmd = `mosquitto_sub -h ${host} -p 8883 --cafile ca.crt --cert client.crt --key client.key -t '${topic}' -v`;
  const notes = renewed
    ? h(
        'p',
        { 'data-testid': 'renewed-note' },
        old?.supersede_at
          ? `The certificate it replaces (serial ${old.serial}) stays valid until ${fmtDate(old.supersede_at)}, then is revoked as superseded: give its clients the new files before then.`
          : 'The certificate it replaces stays valid for the renewal grace, then is revoked as superseded: give its clients the new files before then.',
      )
    : null;
  return issuedPanel({
    testid: 'cert-created',
    title: `Certificate “${cert.name}” ${renewed ? 'renewed' : 'created'}`,
    files: [
      // The certificate, then its intermediate: the file a client presents whole.
      { name: 'client.crt', pem: cert.certificate_pem + (cert.chain_pem || ''), testid: 'download-client-crt', label: 'Certificate and its chain (client.crt)', pemTestid: 'pem-cert' },
      { name: 'client.key', pem: cert.private_key_pem, testid: 'download-client-key', label: 'Private key (client.key)', pemTestid: 'pem-key', key: true },
      { name: 'ca.crt', pem: cert.ca_certificate_pem, testid: 'download-ca-crt', label: 'CA certificate (ca.crt)', pemTestid: 'pem-ca' },
    ],
    notes,
    extra: [
      h('p', { class: 'muted' }, `Serial ${cert.serial} · expires ${fmtDate(cert.expires_at)}`),
      h(
        'div',
        { class: 'field' },
        h('label', { for: 'mosquitto-cmd' }, 'Connect with mosquitto_sub'),
        h('pre', { id: 'mosquitto-cmd', class: 'mono cmd', 'data-testid': 'mosquitto-cmd', tabindex: '0' }, cmd),
        copyButton(cmd, 'Copy command'),
      ),
    ],
  });
}

/** A shortened serial with the whole one as its title. */
export const serialCell = (serial) => h('td', { class: 'mono small', title: serial }, serial.length > 16 ? `${serial.slice(0, 16)}…` : serial);

/**
 * A certificate's status: its badge, and under it why it was revoked, or, for a renewed
 * certificate still in its grace, when it is superseded.
 */
export function statusCell(c) {
  return h(
    'td',
    null,
    badge(c.status),
    c.status === 'active' && c.supersede_at
      ? h('div', { class: 'muted small', 'data-testid': 'cert-superseded' }, `superseded at ${fmtDate(c.supersede_at)}`)
      : null,
    c.reason ? h('div', { class: 'muted small', 'data-testid': 'cert-reason' }, c.reason) : null,
  );
}

/**
 * Asks for a revocation reason in the revoke dialog; resolves to the reason, or null on
 * cancel.
 */
export async function askRevokeReason(c, reasons, what = `“${c.name}”`) {
  const reasonId = uid('reason');
  const data = await confirmDialog({
    title: `Revoke ${what}?`,
    testid: 'revoke-dialog',
    confirmLabel: 'Revoke certificate',
    danger: true,
    content: [
      h('p', null, `Serial ${c.serial}. Clients using it are refused once the broker has the new CRL. This cannot be undone.`),
      h('div', { class: 'field' }, h('label', { for: reasonId }, 'Reason'), select({ id: reasonId, name: 'reason', 'data-testid': 'revoke-reason' }, reasonOptions(reasons), 'unspecified')),
    ],
  });
  return data ? data.get('reason') : null;
}

const KINDS = [['client', 'Client (API keys)'], ['device', 'Device (EST)'], ['claim', 'Claim']];
const EXPIRING = [['', 'Any time'], ['7', 'Within 7 days'], ['30', 'Within 30 days'], ['90', 'Within 90 days']];

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
  const kindFilter = select({ name: 'kind', 'data-testid': 'certs-kind' }, KINDS, 'client');
  const expiringFilter = select({ name: 'expiring_within_days', 'data-testid': 'certs-expiring' }, EXPIRING);

  // Only client certificates belong to an API key.
  const keyField = field('API key', keyFilter);
  kindFilter.addEventListener('change', () => {
    keyField.hidden = kindFilter.value !== 'client';
  });

  // Whom a certificate authenticates: an API key, a device, or (a claim) the enrollment of a tenant's devices.
  const boundTo = (c) => {
    if (c.kind === 'device') return h('span', null, h('span', { class: 'muted small' }, 'device '), c.device || '—');
    if (c.kind === 'claim') return h('span', null, h('span', { class: 'muted small' }, 'claim '), h('a', { href: '#/claims' }, 'see Claims'));
    return keyById.get(c.api_key_id)?.username || c.api_key_id || '—';
  };

  const list = listView({
    noun: 'certificates',
    testid: 'certs-list',
    headers: ['Name', 'Bound to', 'Serial', 'Status', 'Expires', 'Actions'],
    load: (q) => api.certificates.list(q),
    filters: () => ({
      search: search.value.trim(),
      api_key_id: kindFilter.value === 'client' ? keyFilter.value : '',
      status: statusFilter.value,
      kind: kindFilter.value,
      expiring_within_days: expiringFilter.value,
    }),
    row: (c) =>
      h(
        'tr',
        {
          'data-testid': 'cert-row',
          'data-id': c.id,
          'data-name': c.name,
          'data-kind': c.kind,
          'data-status': c.status,
          'data-renewed': c.renewed_by ? 'true' : 'false',
        },
        h('td', null, h('strong', null, c.name)),
        h('td', null, boundTo(c)),
        serialCell(c.serial),
        statusCell(c),
        h('td', null, fmtDate(c.expires_at)),
        h(
          'td',
          { class: 'row-actions' },
          h('button', { type: 'button', class: 'secondary small', onClick: () => downloadOne(c) }, c.kind === 'claim' ? 'claim.crt' : 'client.crt'),
          // A renewed certificate is not renewed again here: that would revoke its renewal at once.
          c.kind === 'client' && c.status === 'active' && !c.renewed_by
            ? h('button', { type: 'button', class: 'secondary small', 'data-testid': 'cert-renew', onClick: () => renew(c) }, 'Renew')
            : null,
          // A claim's certificate is revoked with its claim, on the Claims page.
          c.status === 'active' && c.kind !== 'claim'
            ? h('button', { type: 'button', class: 'danger small', 'data-testid': 'cert-revoke', onClick: () => revoke(c) }, 'Revoke')
            : null,
        ),
      ),
  });

  async function downloadOne(c) {
    try {
      const full = await api.certificates.get(c.id);
      downloadText(c.kind === 'claim' ? 'claim.crt' : 'client.crt', full.certificate_pem);
    } catch (err) {
      mount(out, errorBox(err));
    }
  }

  async function revoke(c) {
    const reason = await askRevokeReason(c, settings.revocation_reasons);
    if (!reason) return;
    try {
      const res = await api.certificates.revoke(c.id, reason);
      mount(out, notice(`“${res.name}” was revoked (${res.reason}); the new CRL is published.`, 'success', 'revoked-notice'));
      list.reload();
    } catch (err) {
      mount(out, errorBox(err, LABELS));
    }
  }

  async function renew(c) {
    const csrId = uid('renew-csr');
    const renewCsr = h('textarea', { id: csrId, name: 'csr_pem', rows: 5, spellcheck: 'false', placeholder: '-----BEGIN CERTIFICATE REQUEST-----', 'data-testid': 'renew-csr' });
    const data = await confirmDialog({
      title: `Renew “${c.name}”?`,
      testid: 'renew-dialog',
      confirmLabel: 'Renew certificate',
      content: [
        h('p', null, `A new certificate with the same name, API key and validity replaces serial ${c.serial}. The current one keeps working for the renewal grace, then is revoked as superseded.`),
        h('p', null, 'fleetca makes a new key pair and shows its private key once, unless you give a CSR.'),
        h('details', null, h('summary', null, 'Sign my CSR instead'), field('CSR (PEM: P-256, P-384, Ed25519 or RSA-2048+)', renewCsr, 'the key never leaves your device')),
      ],
    });
    if (!data) return;
    try {
      const res = await api.certificates.renew(c.id, renewCsr.value.trim() || undefined);
      // The old certificate now carries when it is superseded.
      const old = await api.certificates.get(c.id).catch(() => null);
      mount(out, createdPanel(res, keyById.get(res.api_key_id), settings, { renewed: true, old }));
      list.reload();
      out.scrollIntoView({ block: 'nearest' });
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
  const csrBox = h('fieldset', { class: 'sub', hidden: true }, h('legend', null, 'Certificate signing request (PEM: P-256, P-384, Ed25519 or RSA-2048+)'), field('Upload a CSR file', csrFile), field('or paste it', csr));
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
    ...heading('Certificates', 'MQTT certificates: client certificates bound to an API key, device certificates enrolled over EST, and claim certificates.'),
    form,
    out,
    h(
      'div',
      { class: 'card' },
      h('h2', null, 'All certificates'),
      filterBar(
        [field('Search', search), field('Kind', kindFilter), keyField, field('Status', statusFilter), field('Expires', expiringFilter)],
        () => list.reload(true),
        'Filter certificates',
      ),
      list.el,
    ),
  );
  await list.reload();
}
