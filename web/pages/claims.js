// Claims: claim certificates for fleet provisioning. A factory image carries a claim's
// certificate and key; each device enrolls over EST with it for its own device id, up to
// max_uses devices until the claim expires. List, create (the key shown once, with
// downloads), revoke.

import * as api from '../api.js';
import { h, mount, field, fmtDate, heading, badge, busy, confirmDialog, notice, errorBox, listView, filterBar, downloadText } from '../ui.js';
import { issuedPanel } from './certificates.js';

export const title = 'Claims';

const LABELS = {
  name: 'Name',
  tenant: 'Tenant',
  max_uses: 'Max devices',
  expires_at: 'Valid for',
  register_unknown: 'Unknown devices',
  validity_days: 'Device certificate validity',
};

const DAY = 86_400_000;

/** A claim's status as a badge: active, revoked, expired or used up. */
function claimBadge(status) {
  if (status === 'used_up') return badge('used up', 'expired');
  return badge(status);
}

/** "3 / 100" */
const usesText = (c) => `${c.uses.toLocaleString('en')} / ${c.max_uses.toLocaleString('en')}`;

/** What a new claim shows once: its certificate, key and the CA, as downloads and PEMs. */
function createdPanel(c) {
  return issuedPanel({
    testid: 'claim-created',
    title: `Claim “${c.name}” created`,
    files: [
      { name: 'claim.crt', pem: c.certificate_pem + (c.chain_pem || ''), testid: 'download-claim-crt', label: 'Claim certificate and its chain (claim.crt)', pemTestid: 'pem-claim-cert' },
      { name: 'claim.key', pem: c.private_key_pem, testid: 'download-claim-key', label: 'Private key (claim.key)', pemTestid: 'pem-claim-key', key: true },
      { name: 'ca.crt', pem: c.ca_certificate_pem, testid: 'download-ca-crt', label: 'CA certificate (ca.crt)', pemTestid: 'pem-ca' },
    ],
    notes: h(
      'p',
      null,
      'Put the three files in the factory image. Each device enrolls with them over EST (',
      h('code', null, '/.well-known/est/simpleenroll'),
      ', TLS client authentication with claim.crt) for its own device id.',
    ),
    extra: h(
      'p',
      { class: 'muted', 'data-testid': 'claim-created-facts' },
      `Tenant ${c.tenant} · up to ${c.max_uses.toLocaleString('en')} device${c.max_uses === 1 ? '' : 's'} · `,
      `${c.register_unknown ? 'registers unknown device ids' : 'provisioned devices only'} · device certificates for ${c.validity_days} days · expires ${fmtDate(c.expires_at)}`,
    ),
  });
}

export async function render(root, ctx) {
  const admin = ctx.user.role === 'admin';
  const out = h('div', { 'aria-live': 'polite' });

  // List.
  const tenantFilter = h('input', { name: 'tenant', placeholder: admin ? 'any' : ctx.user.enterprise, autocapitalize: 'none', spellcheck: 'false', 'data-testid': 'claims-tenant' });
  const list = listView({
    noun: 'claims',
    testid: 'claims-list',
    headers: ['Name', 'Tenant', 'Devices enrolled', 'Status', 'Expires', 'Actions'],
    load: (q) => api.claims.list(q),
    filters: () => ({ tenant: tenantFilter.value.trim() }),
    row: (c) =>
      h(
        'tr',
        { 'data-testid': 'claim-row', 'data-id': c.id, 'data-name': c.name, 'data-status': c.status },
        h(
          'td',
          null,
          h('strong', null, c.name),
          h('div', { class: 'muted small' }, `${c.register_unknown ? 'registers unknown devices' : 'provisioned devices only'} · certificates for ${c.validity_days} days`),
        ),
        h('td', null, c.tenant),
        h('td', { 'data-testid': 'claim-uses' }, usesText(c)),
        h(
          'td',
          { 'data-testid': 'claim-status' },
          claimBadge(c.status),
          c.revoked_at ? h('div', { class: 'muted small' }, `revoked ${fmtDate(c.revoked_at)}`) : null,
        ),
        h('td', null, fmtDate(c.expires_at)),
        h(
          'td',
          { class: 'row-actions' },
          h('button', { type: 'button', class: 'secondary small', onClick: () => downloadCert(c) }, 'claim.crt'),
          c.status === 'active' || c.status === 'used_up'
            ? h('button', { type: 'button', class: 'danger small', 'data-testid': 'claim-revoke', onClick: () => revoke(c) }, 'Revoke')
            : null,
        ),
      ),
  });

  async function downloadCert(c) {
    try {
      const cert = await api.certificates.get(c.certificate_id);
      downloadText('claim.crt', cert.certificate_pem);
    } catch (err) {
      mount(out, errorBox(err));
    }
  }

  async function revoke(c) {
    const ok = await confirmDialog({
      title: `Revoke the claim “${c.name}”?`,
      content: [
        h('p', null, `No more devices of ${c.tenant} can enroll with it: its certificate is revoked and the new CRL published. Devices that enrolled already (${usesText(c)}) keep their own certificates.`),
        h('p', null, 'This cannot be undone.'),
      ],
      confirmLabel: 'Revoke claim',
      danger: true,
    });
    if (!ok) return;
    try {
      const res = await api.claims.revoke(c.id);
      mount(out, notice(`The claim “${res.name}” was revoked; the new CRL is published.`, 'success', 'claim-revoked'));
      list.reload();
    } catch (err) {
      mount(out, errorBox(err, LABELS));
    }
  }

  // Create.
  const name = h('input', { name: 'name', required: true, maxlength: 200, placeholder: 'e.g. Line 3, batch 2026-12', 'data-testid': 'claim-name' });
  const tenant = h('input', { name: 'tenant', required: true, value: ctx.user.enterprise, autocapitalize: 'none', spellcheck: 'false', 'data-testid': 'claim-tenant' });
  const maxUses = h('input', { name: 'max_uses', type: 'number', required: true, min: 1, max: 1_000_000, step: 1, inputmode: 'numeric', value: 100, 'data-testid': 'claim-max-uses' });
  const days = h('input', { name: 'days', type: 'number', required: true, min: 1, max: 3650, step: 1, inputmode: 'numeric', value: 30, 'data-testid': 'claim-days' });
  const validity = h('input', { name: 'validity_days', type: 'number', required: true, min: 1, max: 3650, step: 1, inputmode: 'numeric', value: 365, 'data-testid': 'claim-validity' });
  const unknownInput = h('input', { type: 'checkbox', name: 'register_unknown', 'data-testid': 'claim-register-unknown' });
  const slot = h('div', { 'aria-live': 'polite' });
  const btn = h('button', { type: 'submit', 'data-testid': 'claim-create' }, 'Create claim');
  const form = h(
    'form',
    {
      class: 'card',
      'aria-labelledby': 'create-claim-title',
      onSubmit: (e) => {
        e.preventDefault();
        busy(btn, slot, async () => {
          const body = {
            name: name.value.trim(),
            tenant: tenant.value.trim(),
            max_uses: Number(maxUses.value),
            expires_at: new Date(Date.now() + Number(days.value) * DAY).toISOString(),
            register_unknown: unknownInput.checked,
            validity_days: Number(validity.value),
          };
          try {
            const res = await api.claims.create(body);
            mount(out, createdPanel(res));
            form.reset();
            list.reload(true);
            out.scrollIntoView({ block: 'nearest' });
          } catch (err) {
            mount(slot, errorBox(err, LABELS));
          }
        });
      },
    },
    h('h2', { id: 'create-claim-title' }, 'New claim'),
    h(
      'div',
      { class: 'row' },
      field('Name', name, '1–200 characters'),
      field('Tenant', tenant, 'the tenant whose devices enroll with it'),
      field('Max devices', maxUses, 'how many devices may enroll with it: 1–1,000,000'),
      field('Valid for', days, 'days, 1–3650: the claim and its certificate expire then'),
      field('Device certificate validity', validity, 'days, 1–3650'),
    ),
    h('label', { class: 'check' }, unknownInput, ' Register device ids that are not provisioned on their first enrollment (otherwise only provisioned devices enroll)'),
    slot,
    h('div', { class: 'actions' }, btn),
  );

  root.append(
    ...heading('Claims', 'Claim certificates for fleet provisioning: a factory image carries one, and each device enrolls with it over EST for its own certificate.'),
    form,
    out,
    h(
      'div',
      { class: 'card' },
      h('h2', null, 'All claims'),
      filterBar([field('Tenant', tenantFilter)], () => list.reload(true), 'Filter claims'),
      list.el,
    ),
  );
  await list.reload();
}
