// The certificate authority: subject, fingerprint, validity, and downloads of the CA
// certificate and the CRL.

import * as api from '../api.js';
import { h, fmtDate, heading, secretField } from '../ui.js';

export const title = 'Certificate authority';

/** "ab:cd:…" in upper case, the way openssl prints fingerprints. */
const colonHex = (hex) => hex.toUpperCase().match(/.{1,2}/g).join(':');

function daysLeft(iso) {
  const days = Math.floor((new Date(iso).getTime() - Date.now()) / 86_400_000);
  return days >= 0 ? `${days} days left` : 'expired';
}

export async function render(root, ctx) {
  const ca = await api.overview.ca();
  if (!ctx.isCurrent()) return;
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
      h(
        'table',
        { 'data-testid': 'ca-list' },
        h('thead', null, h('tr', null, ...['ID', 'Role', 'State', 'Subject', 'Expires', 'Key held', 'Live certificates'].map((t) => h('th', null, t)))),
        h(
          'tbody',
          null,
          ...(ca.authorities || []).map((c) =>
            h(
              'tr',
              { 'data-testid': `ca-row-${c.id}` },
              h('td', null, String(c.id)),
              h('td', null, c.role),
              h('td', null, c.state),
              h('td', null, c.subject || '(waiting for its certificate)'),
              h('td', null, c.not_after ? `${fmtDate(c.not_after)} (${daysLeft(c.not_after)})` : '—'),
              h('td', null, c.holds_key ? 'yes' : 'no'),
              h('td', { 'data-testid': `ca-live-${c.id}` }, (c.live_certificates ?? 0).toLocaleString('en')),
            ),
          ),
        ),
      ),
    ),
  );
}
