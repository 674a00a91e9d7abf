// Enrollment in the UI: claims (the claim key shown once, revoking a claim), renewing a
// client certificate (the new key shown once, the old certificate superseded after the
// grace), a device's certificates panel, and the certificates page's kind and expiry
// filters. Each test makes its own data through the API and opens its page afresh.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startServer, launchBrowser, newPage, signIn, screenshot, download, tempDir, ADMIN_PASSWORD, PHONE } from './harness.js';

let server;
let browser;
let page;
let apiKey;
const files = tempDir();
const TENANT = 'nnn.acme';
const DAY = 86_400_000;

const ok = (res, status = 201) => {
  assert.equal(res.status, status, JSON.stringify(res.body));
  return res.body;
};
const openssl = (...args) => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
/** As the UI shows times: "2027-11-22 23:29 UTC". */
const fmt = (iso) => `${new Date(iso).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
const inDays = (n) => new Date(Date.now() + n * DAY).toISOString();

before(async () => {
  server = await startServer('enrollment');
  browser = await launchBrowser();
  page = await newPage(browser, server);
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  apiKey = ok(await server.api('POST', '/api/v4/manage/users/', { username: 'svc-enroll', is_service_account: true, enterprise: TENANT }));
  await signIn(page, 'admin', ADMIN_PASSWORD);
  await page.getByTestId('page-overview').waitFor();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Opens a page afresh (nothing shown once survives) and waits until it has loaded. */
async function open(name, p = page) {
  await p.goto(`/#/${name}`);
  await p.reload();
  await p.locator(`[data-testid="page-${name}"][aria-busy="false"]`).waitFor();
}

const claimRow = (name) => page.locator(`[data-testid="claim-row"][data-name="${name}"]`);
const certRow = (id) => page.locator(`[data-testid="cert-row"][data-id="${id}"]`);
/** Waits until the certificates list shows exactly these names (in any order). */
const listedCerts = (names) =>
  page.waitForFunction(
    (want) => [...document.querySelectorAll('[data-testid="cert-row"]')].map((r) => r.dataset.name).sort().join('|') === want,
    [...names].sort().join('|'),
  );

test('creating a claim shows its certificate and key once, and lists the claim', async () => {
  await open('claims');
  assert.equal(await page.getByTestId('nav-claims').getAttribute('aria-current'), 'page');
  // The nav entry sits next to Devices.
  const nav = await page.locator('#nav a').evaluateAll((links) => links.map((a) => a.dataset.testid));
  assert.equal(nav.indexOf('nav-claims'), nav.indexOf('nav-devices') + 1);

  // A bad tenant: the API's field error, under the form's label.
  await page.getByTestId('claim-name').fill('Line 3, batch 12');
  await page.getByTestId('claim-tenant').fill('Not A Tenant!');
  await page.getByTestId('claim-create').click();
  assert.match(await page.getByTestId('field-errors').textContent(), /^Tenant: /);
  assert.equal(ok(await server.api('GET', '/api/v4/manage/claims/?page_size=500'), 200).results.filter((c) => c.name === 'Line 3, batch 12').length, 0);

  await page.getByTestId('claim-tenant').fill(TENANT);
  await page.getByTestId('claim-max-uses').fill('5');
  await page.getByTestId('claim-days').fill('14');
  await page.getByTestId('claim-create').click();
  const panel = page.getByTestId('claim-created');
  await panel.waitFor();
  assert.match(await panel.textContent(), /Claim “Line 3, batch 12” created.*you will not see it again/);
  assert.match(
    await page.getByTestId('claim-created-facts').textContent(),
    /^Tenant nnn\.acme · up to 5 devices · provisioned devices only · device certificates for 365 days · expires \d{4}-\d\d-\d\d \d\d:\d\d UTC$/,
  );
  await panel.getByText('Show the PEMs').click();
  const key = await page.getByTestId('pem-claim-key').inputValue();
  assert.match(key, /^-----BEGIN (EC )?PRIVATE KEY-----/);
  await panel.getByRole('button', { name: 'Copy Private key (claim.key)' }).click();
  await panel.getByText('Copied.').first().waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key);

  // The downloads: the claim certificate, signed by the CA, and its key.
  const crt = await download(page, page.getByTestId('download-claim-crt'), files);
  const keyFile = await download(page, page.getByTestId('download-claim-key'), files);
  const ca = await download(page, page.getByTestId('download-ca-crt'), files);
  assert.deepEqual([crt, keyFile, ca].map((p) => p.split('/').pop()), ['claim.crt', 'claim.key', 'ca.crt']);
  assert.equal(openssl('verify', '-CAfile', ca, '-untrusted', crt, crt).trim(), `${crt}: OK`);
  assert.equal(openssl('x509', '-in', crt, '-noout', '-pubkey'), openssl('pkey', '-in', keyFile, '-pubout'));

  // Listed as asked, and stored so.
  const row = claimRow('Line 3, batch 12');
  await row.waitFor();
  assert.equal(await row.getAttribute('data-status'), 'active');
  assert.equal(await row.getByTestId('claim-uses').textContent(), '0 / 5');
  assert.match(await row.textContent(), /nnn\.acme/);
  const stored = ok(await server.api('GET', `/api/v4/manage/claims/${await row.getAttribute('data-id')}/`), 200);
  assert.deepEqual(
    [stored.tenant, stored.max_uses, stored.uses, stored.register_unknown, stored.validity_days, stored.status],
    [TENANT, 5, 0, false, 365, 'active'],
  );
  assert.ok(Math.abs(new Date(stored.expires_at) - Date.now() - 14 * DAY) < 3_600_000, stored.expires_at);
  assert.match(await row.textContent(), new RegExp(fmt(stored.expires_at)));
  assert.equal(stored.private_key_pem, undefined);
  // The form is back to its defaults.
  assert.equal(await page.getByTestId('claim-name').inputValue(), '');
  assert.equal(await page.getByTestId('claim-max-uses').inputValue(), '100');
  await screenshot(page, 'claims');

  // Gone after a reload: the key is never shown again.
  await page.reload();
  await row.waitFor();
  assert.equal(await page.getByTestId('claim-created').count(), 0);
  assert.equal(await page.getByText(key.split('\n')[1]).count(), 0);
});

test('revoking a claim asks first, then shows it revoked with its certificate', async () => {
  const claim = ok(await server.api('POST', '/api/v4/manage/claims/', { name: 'revoke-me', tenant: TENANT, max_uses: 3 }));
  await open('claims');
  const row = claimRow('revoke-me');
  await row.getByTestId('claim-revoke').click();
  const dialog = page.getByTestId('confirm-dialog');
  await dialog.waitFor();
  assert.match(await dialog.textContent(), /Revoke the claim “revoke-me”\?.*No more devices of nnn\.acme can enroll with it.*cannot be undone/);
  // Cancel first: nothing happens.
  await dialog.getByTestId('dialog-cancel').click();
  await dialog.waitFor({ state: 'detached' });
  assert.equal(await row.getAttribute('data-status'), 'active');
  assert.equal(ok(await server.api('GET', `/api/v4/manage/claims/${claim.id}/`), 200).status, 'active');

  await row.getByTestId('claim-revoke').click();
  await dialog.getByTestId('dialog-confirm').click();
  assert.equal(await page.getByTestId('claim-revoked').textContent(), 'The claim “revoke-me” was revoked; the new CRL is published.');
  await page.locator('[data-testid="claim-row"][data-name="revoke-me"][data-status="revoked"]').waitFor();
  assert.match(await row.getByTestId('claim-status').textContent(), /^revokedrevoked \d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
  assert.equal(await row.getByTestId('claim-revoke').count(), 0);
  await screenshot(page, 'claims-revoked');
  const stored = ok(await server.api('GET', `/api/v4/manage/claims/${claim.id}/`), 200);
  assert.equal(stored.status, 'revoked');
  assert.ok(stored.revoked_at);
  assert.equal(ok(await server.api('GET', `/api/v4/manage/mqtt-certificates/${claim.certificate_id}/`), 200).status, 'revoked');
});

test('renewing a client certificate shows the new key once; the old row shows when it is superseded', async () => {
  const old = ok(await server.api('POST', '/api/v4/manage/mqtt-certificates/', { name: 'renew-me', api_key_id: apiKey.id }));
  await open('certificates');
  const oldRow = certRow(old.id);
  await oldRow.getByTestId('cert-renew').click();
  const dialog = page.getByTestId('renew-dialog');
  await dialog.waitFor();
  assert.match(await dialog.textContent(), /Renew “renew-me”\?.*keeps working for the renewal grace, then is revoked as superseded/);
  await dialog.getByTestId('dialog-confirm').click();

  const panel = page.getByTestId('cert-created');
  await panel.getByText('Certificate “renew-me” renewed').waitFor();
  assert.match(await panel.textContent(), /you will not see it again/);
  const stored = ok(await server.api('GET', `/api/v4/manage/mqtt-certificates/${old.id}/`), 200);
  assert.ok(stored.renewed_by, JSON.stringify(stored));
  const graceHours = (new Date(stored.supersede_at) - Date.now()) / 3_600_000;
  assert.ok(graceHours > 23 && graceHours <= 24, stored.supersede_at);
  assert.equal(
    await page.getByTestId('renewed-note').textContent(),
    `The certificate it replaces (serial ${old.serial}) stays valid until ${fmt(stored.supersede_at)}, then is revoked as superseded: give its clients the new files before then.`,
  );
  await panel.getByText('Show the PEMs').click();
  const key = await page.getByTestId('pem-key').inputValue();
  assert.match(key, /^-----BEGIN (EC )?PRIVATE KEY-----/);
  const crt = await download(page, page.getByTestId('download-client-crt'), files);
  const keyFile = await download(page, page.getByTestId('download-client-key'), files);
  assert.equal(openssl('x509', '-in', crt, '-noout', '-pubkey'), openssl('pkey', '-in', keyFile, '-pubout'));
  // They are the renewal's: a new serial under the same name.
  const renewal = ok(await server.api('GET', `/api/v4/manage/mqtt-certificates/${stored.renewed_by}/`), 200);
  const hex = (serial) => serial.toLowerCase().replace(/^0+/, '');
  assert.equal(hex(openssl('x509', '-in', crt, '-noout', '-serial').trim().split('=')[1]), hex(renewal.serial));
  assert.notEqual(hex(renewal.serial), hex(old.serial));
  assert.equal(renewal.name, 'renew-me');

  // The old certificate is still active, says when it is superseded and cannot be renewed
  // again; its renewal is listed under the same name.
  await oldRow.getByTestId('cert-superseded').waitFor();
  assert.equal(await oldRow.getByTestId('cert-superseded').textContent(), `superseded at ${fmt(stored.supersede_at)}`);
  assert.equal(await oldRow.getAttribute('data-status'), 'active');
  assert.equal(await oldRow.getByTestId('cert-renew').count(), 0);
  const newRow = certRow(stored.renewed_by);
  await newRow.waitFor();
  assert.equal(await newRow.getAttribute('data-name'), 'renew-me');
  assert.equal(await newRow.getAttribute('data-status'), 'active');
  assert.equal(await newRow.getByTestId('cert-superseded').count(), 0);
  assert.equal(await newRow.getByTestId('cert-renew').count(), 1);
  await screenshot(page, 'certificates-renewed');

  // Gone after a reload: the new key is never shown again; the old row still says when.
  await page.reload();
  await oldRow.getByTestId('cert-superseded').waitFor();
  assert.equal(await page.getByTestId('cert-created').count(), 0);
  assert.equal(await page.getByText(key.split('\n')[1]).count(), 0);
});

test("a device without certificates shows an empty certificates panel; disable and delete say they revoke its certificates", async () => {
  ok(await server.api('POST', '/api/v4/manage/devices/', { device_id: 'no-certs-1', tenant: TENANT }));
  assert.equal(ok(await server.api('GET', `/api/v4/manage/devices/${TENANT}/no-certs-1/certificates/`), 200).count, 0);
  await open('devices');
  const row = page.locator('[data-testid="device-row"][data-device-id="no-certs-1"]');
  const toggle = row.getByTestId('device-certs-toggle');
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
  await toggle.click();
  const panel = page.locator('[data-testid="device-certs"][data-device-id="no-certs-1"]');
  await panel.getByText('no-certs-1 has no certificates: a device gets one by enrolling over EST.').waitFor();
  assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
  assert.equal(await toggle.getAttribute('aria-controls'), await panel.getAttribute('id'));
  assert.equal(await panel.getByRole('heading', { name: 'Certificates of no-certs-1' }).count(), 1);
  assert.equal(await panel.getByTestId('device-cert-row').count(), 0);
  await screenshot(page, 'device-certificates-empty');

  // Disabling asks first and says the certificates go too; cancelled, nothing changes.
  await row.getByTestId('device-toggle').click();
  const dialog = page.getByTestId('confirm-dialog');
  assert.match(await dialog.textContent(), /Disable no-certs-1\?.*its certificates are revoked/);
  await dialog.getByTestId('dialog-cancel').click();
  await dialog.waitFor({ state: 'detached' });
  // So does deleting.
  await row.getByTestId('device-delete').click();
  assert.match(await dialog.textContent(), /Delete no-certs-1\?.*its certificates are revoked/);
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  assert.equal(ok(await server.api('GET', `/api/v4/manage/devices/${TENANT}/no-certs-1/`), 200).is_active, true);

  // The panel closes again.
  await toggle.click();
  await panel.waitFor({ state: 'detached' });
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
});

test('the kind and expiring-within filters narrow the certificates list', async () => {
  ok(await server.api('POST', '/api/v4/manage/mqtt-certificates/', { name: 'exp-client', api_key_id: apiKey.id }));
  ok(await server.api('POST', '/api/v4/manage/claims/', { name: 'exp-soon', tenant: TENANT, max_uses: 1, expires_at: inDays(3) }));
  ok(await server.api('POST', '/api/v4/manage/claims/', { name: 'exp-later', tenant: TENANT, max_uses: 1, expires_at: inDays(60) }));
  await open('certificates');
  await page.getByTestId('certs-search').fill('exp-');
  await page.getByTestId('certs-search').press('Enter');
  // Client certificates by default: one, for a year.
  assert.equal(await page.getByTestId('certs-kind').inputValue(), 'client');
  await listedCerts(['exp-client']);
  await page.getByTestId('certs-expiring').selectOption('90');
  await page.getByText('No certificates match.').waitFor();

  // Claim certificates: both expire within 90 days, one within 30.
  await page.getByTestId('certs-kind').selectOption('claim');
  assert.ok(await page.getByTestId('certs-key').isHidden(), 'no API key filter for claims');
  await listedCerts(['exp-later', 'exp-soon']);
  await page.getByTestId('certs-expiring').selectOption('30');
  await listedCerts(['exp-soon']);
  const soon = page.locator('[data-testid="cert-row"][data-name="exp-soon"]');
  assert.equal(await soon.getAttribute('data-kind'), 'claim');
  assert.equal(await soon.getByTestId('cert-revoke').count(), 0, 'a claim is revoked on the Claims page');
  assert.equal(await soon.getByTestId('cert-renew').count(), 0);
  await screenshot(page, 'certificates-expiring');
  await page.getByTestId('certs-expiring').selectOption('7');
  await listedCerts(['exp-soon']);
  const api = ok(await server.api('GET', '/api/v4/manage/mqtt-certificates/?kind=claim&expiring_within_days=7&search=exp-'), 200);
  assert.deepEqual(api.results.map((c) => c.name), ['exp-soon']);

  // Back to any expiry and client certificates.
  await page.getByTestId('certs-expiring').selectOption('');
  await listedCerts(['exp-later', 'exp-soon']);
  await page.getByTestId('certs-kind').selectOption('client');
  await listedCerts(['exp-client']);
  assert.ok(await page.getByTestId('certs-key').isVisible());
});

test('the claims page and a device’s certificates panel fit a phone', async () => {
  ok(await server.api('POST', '/api/v4/manage/devices/', { device_id: 'phone-dev-1', tenant: TENANT }));
  ok(await server.api('POST', '/api/v4/manage/claims/', { name: 'phone-claim', tenant: TENANT, max_uses: 10 }));
  const phone = await newPage(browser, server, { viewport: PHONE });
  await signIn(phone, 'admin', ADMIN_PASSWORD);
  await phone.getByTestId('page-overview').waitFor();
  await phone.getByRole('button', { name: 'Menu' }).click();
  await phone.getByTestId('nav-claims').click();
  await phone.locator('[data-testid="page-claims"][aria-busy="false"]').waitFor();
  await phone.locator('[data-testid="claim-row"][data-name="phone-claim"]').waitFor();
  await screenshot(phone, 'phone-claims');
  assert.ok((await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)) <= 0, 'claims overflow');
  await open('devices', phone);
  await phone.locator('[data-testid="device-row"][data-device-id="phone-dev-1"]').getByTestId('device-certs-toggle').click();
  await phone.locator('[data-testid="device-certs"][data-device-id="phone-dev-1"]').getByText('has no certificates').waitFor();
  await screenshot(phone, 'phone-device-certificates');
  assert.ok((await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)) <= 0, 'devices overflow');
  assert.deepEqual(phone.problems, []);
  await phone.context().close();
});

test('no script errors or CSP violations happened', () => {
  assert.deepEqual(page.problems, []);
});
