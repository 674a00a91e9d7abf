// The certificate authority: subject, fingerprint, validity, and downloads of the CA
// certificate and the CRL; every CA fleetca holds, and (admins) adding an intermediate,
// importing the certificate an operator's root signed, making one the issuing CA, and
// revoking one.

import * as api from '../api.js';
import { h, mount, field, select, table, fmtDate, heading, secretField, confirmDialog, errorBox, downloadText } from '../ui.js';

export const title = 'Certificate authority';

/** "ab:cd:…" in upper case, the way openssl prints fingerprints. */
const colonHex = (hex) => hex.toUpperCase().match(/.{1,2}/g).join(':');

function daysLeft(iso) {
  const days = Math.floor((new Date(iso).getTime() - Date.now()) / 86_400_000);
  return days >= 0 ? `${days} days left` : 'expired';
}

const LABELS = { common_name: 'Common name', token_key: 'Key label in the token', certificate_pem: 'Intermediate certificate', root_pem: 'Root certificate' };

/** What happened, and what to do next (the server says: restart, bundle, activate). */
function done(out, title, next, extra = []) {
  mount(out, h('div', { class: 'card once', 'data-testid': 'ca-result' }, h('h2', null, title), h('p', { 'data-testid': 'ca-next' }, next), ...extra));
  out.scrollIntoView({ block: 'nearest' });
}

/** Revoking an intermediate (not the issuing one): it and everything it signed. */
function revokeButton(c, out) {
  return h('button', {
    class: 'danger small', 'data-testid': `ca-revoke-${c.id}`,
    onclick: async () => {
      const reason = select({ name: 'reason', 'data-testid': 'ca-revoke-reason' }, [
        ['keyCompromise', 'Its key may be known to someone else (keyCompromise)'],
        ['superseded', 'Replaced by another intermediate (superseded)'],
        ['cessationOfOperation', 'No longer used (cessationOfOperation)'],
        ['unspecified', 'Unspecified'],
      ], 'keyCompromise');
      const data = await confirmDialog({
        title: `Revoke CA ${c.id} and every certificate it signed?`,
        content: [
          h('p', null, 'Every unexpired certificate it signed is revoked at once and its live sessions end; its root\'s CRL lists it. This cannot be undone.'),
          field('Reason', reason),
        ],
        confirmLabel: 'Revoke the CA',
        danger: true,
      });
      if (!data) return;
      try {
        const res = await api.authorities.revoke(c.id, data.get('reason'));
        done(out, `CA ${res.id} revoked, with ${res.certificates_revoked} certificates`, res.next);
      } catch (err) {
        mount(out, errorBox(err, LABELS));
      }
    },
  }, 'Revoke…');
}

/** The admin's actions on one CA row: import a pending one's certificate, activate a standby intermediate, revoke an intermediate that does not issue. */
function rowActions(c, out) {
  const revocable = c.role === 'intermediate' && !c.revoked_at && ['standby', 'retiring', 'retired'].includes(c.state);
  const revoke = revocable ? revokeButton(c, out) : null;
  if (c.state === 'pending') {
    return h('button', {
      class: 'secondary small', 'data-testid': `ca-import-${c.id}`,
      onclick: async () => {
        const cert = h('textarea', { name: 'certificate_pem', rows: 6, required: true, class: 'mono', 'data-testid': 'ca-import-cert' });
        const rootPem = h('textarea', { name: 'root_pem', rows: 6, required: true, class: 'mono', 'data-testid': 'ca-import-root' });
        const data = await confirmDialog({
          title: `Import the certificate of CA ${c.id}`,
          content: [
            h('p', null, 'Paste the certificate your root signed for this CA\'s CSR, and your root\'s certificate. fleetca checks the chain, the constraints and that the key is the one it made.'),
            field('Intermediate certificate (PEM)', cert),
            field('Root certificate (PEM)', rootPem),
          ],
          confirmLabel: 'Import',
        });
        if (!data) return;
        try {
          const res = await api.authorities.import(c.id, data.get('certificate_pem'), data.get('root_pem'));
          done(out, `CA ${res.id} stands by`, res.next);
        } catch (err) {
          mount(out, errorBox(err, LABELS));
        }
      },
    }, 'Import certificate…');
  }
  if (c.state === 'standby' && c.role === 'intermediate') {
    return [h('button', {
      class: 'secondary small', 'data-testid': `ca-activate-${c.id}`,
      onclick: async () => {
        const ok = await confirmDialog({
          title: `Make CA ${c.id} the issuing CA?`,
          content: h('p', null, 'From the next start of each instance every new certificate and renewal comes from it, and the CA issuing now retires (its certificates keep working until they expire). Brokers must have the new trust bundle first.'),
          confirmLabel: 'Make it the issuing CA',
          danger: true,
        });
        if (!ok) return;
        try {
          const res = await api.authorities.activate(c.id);
          done(out, `CA ${res.id} issues after the restart`, res.next);
        } catch (err) {
          mount(out, errorBox(err, LABELS));
        }
      },
    }, 'Make issuing CA…'), ' ', revoke];
  }
  return revoke;
}

/** The admin's form that adds an issuing intermediate. */
function addForm(out) {
  const signedBy = select({ name: 'signed_by', 'data-testid': 'ca-signed-by' }, [['fleetca', 'fleetca\'s root'], ['operator', 'my own root (fleetca writes a CSR)']], 'fleetca');
  const cn = h('input', { name: 'common_name', maxlength: 64, placeholder: 'fleetca issuing CA <date>', 'data-testid': 'ca-common-name' });
  const tokenKey = h('input', { name: 'token_key', maxlength: 64, pattern: '[A-Za-z0-9._-]+', placeholder: 'none: sealed in the database', autocapitalize: 'none', 'data-testid': 'ca-token-key' });
  const form = h(
    'form',
    {
      'data-testid': 'ca-add-form',
      onsubmit: async (e) => {
        e.preventDefault();
        const body = { signed_by: signedBy.value };
        if (cn.value.trim()) body.common_name = cn.value.trim();
        if (tokenKey.value.trim()) body.token_key = tokenKey.value.trim();
        const ok = await confirmDialog({
          title: 'Add an issuing intermediate?',
          content: h('p', null, body.signed_by === 'fleetca'
            ? 'fleetca\'s root certifies a new key. The intermediate stands by: trusted after the next restart, issuing only once you make it the issuing CA.'
            : 'fleetca makes a key and a CSR for your root to sign; then import the certificate here.'),
          confirmLabel: 'Add intermediate',
        });
        if (!ok) return;
        try {
          const res = await api.authorities.add(body);
          const extra = res.csr_pem
            ? [secretField('CSR for your root', res.csr_pem, 'ca-csr', { multiline: true }),
               h('button', { type: 'button', class: 'secondary', 'data-testid': 'ca-csr-download', onclick: () => downloadText(`intermediate-${res.id}.csr`, res.csr_pem) }, 'Download the CSR')]
            : [];
          done(out, `CA ${res.id} added (${res.state})`, res.next, extra);
        } catch (err) {
          mount(out, errorBox(err, LABELS));
        }
      },
    },
    h('div', { class: 'row' },
      field('Signed by', signedBy),
      field('Common name', cn, 'at most 64 characters'),
      field('Key label in the token', tokenKey, 'only with [pkcs11] set; leave empty to seal the key in the database')),
    h('div', { class: 'actions left' }, h('button', { type: 'submit', 'data-testid': 'ca-add' }, 'Add intermediate…')),
  );
  return h('div', { class: 'card' }, h('h2', null, 'Add an issuing intermediate'),
    h('p', { class: 'muted' }, 'README: "Rotating a CA". Each step takes effect when every instance restarts: add, restart, give brokers the new bundle, make it the issuing CA, restart.'),
    form);
}

export async function render(root, ctx) {
  const ca = await api.overview.ca();
  if (!ctx.isCurrent()) return;
  const admin = ctx.user.role === 'admin';
  const out = h('div', { 'aria-live': 'polite', 'data-testid': 'ca-out' });
  // The CRL that lists revoked certificates is the issuing CA's (CA 1 keeps /crl.der).
  const active = (ca.authorities || []).find((c) => c.state === 'active');
  const issuingCrl = active && active.id !== 1 ? `/crl/${active.id}.der` : '/crl.der';
  root.append(
    ...heading('Certificate authority', 'Clients and brokers trust this CA; the CRL lists the certificates it has revoked.'),
    h(
      'div',
      { class: 'card' },
      h('h2', null, 'CA certificate'),
      h(
        'dl',
        { class: 'facts' },
        h('dt', null, 'Subject'), h('dd', { 'data-testid': 'ca-subject' }, ca.subject),
        h('dt', null, 'SHA-256 fingerprint'), h('dd', { class: 'mono break', 'data-testid': 'ca-fingerprint' }, colonHex(ca.fingerprint)),
        ca.not_before ? [h('dt', null, 'Valid from'), h('dd', { 'data-testid': 'ca-not-before' }, fmtDate(ca.not_before))] : null,
        h('dt', null, 'Expires'), h('dd', { 'data-testid': 'ca-not-after' }, `${fmtDate(ca.not_after)} (${daysLeft(ca.not_after)})`),
      ),
      h(
        'div',
        { class: 'actions left' },
        h('a', { class: 'button', href: '/ca.pem', download: 'ca.crt', 'data-testid': 'download-ca' }, 'Download the trust bundle (ca.crt)'),
        h('a', { class: 'button secondary', href: '/crl.pem', download: 'crl.pem', 'data-testid': 'download-crl-pem' }, 'Download every CRL (PEM)'),
        h('a', { class: 'button secondary', href: issuingCrl, download: 'crl.der', 'data-testid': 'download-crl-der' }, 'Download the issuing CA\'s CRL (DER)'),
      ),
      h('details', null, h('summary', null, 'Show the PEM'), secretField('CA certificate', ca.certificate_pem, 'ca-pem', { multiline: true })),
    ),
    h(
      'div',
      { class: 'card' },
      h('h2', null, 'Certificate authorities'),
      h('p', { class: 'muted' }, 'The active CA signs every new certificate; the others are trusted (standby), being retired, or waiting for their certificate. fleetca ca list shows the same; README: "Certificate authorities".'),
      table(
        ['ID', 'Role', 'State', 'Subject', 'Expires', 'Key held', 'Live certificates', ...(admin ? [''] : [])],
        (ca.authorities || []).map((c) =>
          h(
            'tr',
            { 'data-testid': `ca-row-${c.id}` },
            h('td', null, String(c.id)),
            h('td', null, c.role),
            h('td', { 'data-testid': `ca-state-${c.id}` },
              c.loaded === false ? `${c.state} (from the next restart)` : c.state,
              c.revoked_at ? h('div', { class: 'muted small' }, `revoked ${fmtDate(c.revoked_at)} (${c.revocation_reason})`) : null),
            h('td', null, c.subject || '(waiting for its certificate)'),
            h('td', null, c.not_after ? `${fmtDate(c.not_after)} (${daysLeft(c.not_after)})` : '—'),
            h('td', null, c.key_store === 'token' ? 'yes, in the token' : c.holds_key ? 'yes' : 'no'),
            h('td', { 'data-testid': `ca-live-${c.id}` }, (c.live_certificates ?? 0).toLocaleString('en')),
            admin ? h('td', null, rowActions(c, out)) : null,
          ),
        ),
        { 'data-testid': 'ca-list' },
      ),
    ),
    out,
    admin ? addForm(out) : null,
  );
}
