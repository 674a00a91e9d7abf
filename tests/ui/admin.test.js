// An admin's day in the UI: sign in, API keys, certificates (with openssl checks),
// revocation and the CRL, devices and bulk CSV, the CA page, the account page.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, launchBrowser, newPage, signIn, screenshot, download, tempDir, ADMIN_PASSWORD, PHONE } from './harness.js';

let server;
let browser;
let page;
const files = tempDir();

before(async () => {
  server = await startServer('admin');
  browser = await launchBrowser();
  page = await newPage(browser, server);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const openssl = (...args) => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

async function crlNumber() {
  await page.goto('/#/overview');
  const text = await page.getByTestId('crl-number').textContent();
  return Number(text);
}

test('an admin signs in and sees the overview', async () => {
  await page.goto('/');
  await page.getByTestId('login-form').waitFor();
  await screenshot(page, 'login');
  await signIn(page, 'admin', ADMIN_PASSWORD);
  await page.getByTestId('page-overview').waitFor();
  assert.match(await page.getByTestId('whoami').textContent(), /admin · admin · default/);
  assert.equal(await page.getByTestId('stat-api-keys').textContent(), '0');
  assert.equal(await page.getByTestId('stat-devices').textContent(), '0');
  assert.match(await page.getByTestId('crl-publish').textContent(), /published/);
});

test('creating an API key shows its token once', async () => {
  await page.getByTestId('nav-keys').click();
  await page.getByTestId('page-keys').waitFor();
  await page.getByLabel('Name', { exact: true }).fill('svc-ui-test');
  await page.getByTestId('key-create').click();
  const panel = page.getByTestId('token-panel');
  await panel.waitFor();
  assert.match(await panel.textContent(), /you will not see this token again/);
  const token = await page.getByTestId('token-value').inputValue();
  assert.ok(token.length >= 32, `token ${token}`);
  // The copy button puts it on the clipboard.
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  await panel.getByRole('button', { name: 'Copy API token' }).click();
  await panel.getByText('Copied.').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), token);
  // The token works as a Bearer token.
  const me = await server.api('GET', '/api/v4/manage/users/', undefined, token);
  assert.equal(me.status, 200);
  assert.equal(me.body.results[0].username, 'svc-ui-test');
  await page.locator('[data-testid="key-row"][data-username="svc-ui-test"]').waitFor();
  await screenshot(page, 'keys');
  // Gone after a reload: the token is never shown again.
  await page.reload();
  await page.locator('[data-testid="key-row"][data-username="svc-ui-test"]').waitFor();
  assert.equal(await page.getByTestId('token-panel').count(), 0);
  assert.equal(await page.getByText(token).count(), 0);
});

test('rotating a key token shows the new one and the old one stops working', async () => {
  await server.api('POST', '/api/v4/manage/users/', { username: 'svc-rotate', is_service_account: true });
  await page.getByTestId('keys-search').fill('rotate');
  await page.getByTestId('keys-search').press('Enter');
  const row = page.locator('[data-testid="key-row"][data-username="svc-rotate"]');
  await row.getByTestId('key-rotate').click();
  await page.getByTestId('confirm-dialog').getByTestId('dialog-confirm').click();
  await page.getByText('Token for svc-rotate rotated').waitFor();
  const token = await page.getByTestId('token-value').inputValue();
  assert.equal((await server.api('GET', '/api/v4/manage/users/', undefined, token)).status, 200);
  // Deactivate it; Escape first closes the dialog without doing anything.
  await row.getByTestId('key-deactivate').click();
  await page.getByTestId('confirm-dialog').waitFor();
  await page.keyboard.press('Escape');
  await page.getByTestId('confirm-dialog').waitFor({ state: 'detached' });
  assert.equal((await server.api('GET', '/api/v4/manage/users/', undefined, token)).status, 200);
  await row.getByTestId('key-deactivate').click();
  await page.getByTestId('confirm-dialog').getByTestId('dialog-confirm').click();
  await page.getByTestId('notice').waitFor();
  await page.getByText('No API keys match.').waitFor();
  assert.equal((await server.api('GET', '/api/v4/manage/users/', undefined, token)).status, 401);
});

let certName;

test('creating a certificate downloads client.crt, client.key and ca.crt that openssl accepts', async () => {
  await page.getByTestId('nav-certificates').click();
  await page.getByTestId('page-certificates').waitFor();
  certName = 'ui-test-client';
  await page.getByTestId('cert-name').fill(certName);
  await page.getByTestId('cert-key').selectOption({ label: 'svc-ui-test (default)' });
  await page.getByTestId('cert-years').selectOption('2');
  await page.getByTestId('cert-create').click();
  const panel = page.getByTestId('cert-created');
  await panel.waitFor();
  assert.match(await panel.textContent(), /you will not see it again/);
  assert.match(await page.getByTestId('mosquitto-cmd').textContent(), /^mosquitto_sub .*--cafile ca\.crt --cert client\.crt --key client\.key .*v4\/groups\/default\.master\/#/);
  const crt = await download(page, page.getByTestId('download-client-crt'), files);
  const key = await download(page, page.getByTestId('download-client-key'), files);
  const ca = await download(page, page.getByTestId('download-ca-crt'), files);
  assert.deepEqual([crt, key, ca].map((p) => p.split('/').pop()), ['client.crt', 'client.key', 'ca.crt']);
  assert.equal(openssl('verify', '-CAfile', ca, '-untrusted', crt, crt).trim(), `${crt}: OK`);
  // Validity: two years.
  const end = openssl('x509', '-in', crt, '-noout', '-enddate').trim().replace('notAfter=', '');
  const years = (new Date(end) - Date.now()) / (365 * 86_400_000);
  assert.ok(years > 1.9 && years < 2.1, `notAfter ${end}`);
  await page.locator(`[data-testid="cert-row"][data-name="${certName}"]`).waitFor();
  await screenshot(page, 'certificates');
});

test('the downloaded client.key loads in openssl and belongs to client.crt', () => {
  const crt = join(files, 'client.crt');
  const key = join(files, 'client.key');
  assert.equal(openssl('x509', '-in', crt, '-noout', '-pubkey'), openssl('pkey', '-in', key, '-pubout'));
});

test('a certificate can be signed from an uploaded CSR', async () => {
  const key = join(files, 'csr.key');
  const csr = join(files, 'device.csr');
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key);
  openssl('req', '-new', '-key', key, '-subj', '/CN=ignored', '-out', csr);
  await page.getByTestId('cert-name').fill('from-csr');
  await page.getByTestId('cert-key').selectOption({ label: 'svc-ui-test (default)' });
  await page.getByTestId('cert-mode-csr').check();
  await page.getByTestId('cert-csr-file').setInputFiles(csr);
  await page.waitForFunction(() => document.querySelector('[data-testid="cert-csr"]').value.includes('BEGIN CERTIFICATE REQUEST'));
  await page.getByTestId('cert-create').click();
  await page.getByTestId('cert-created').filter({ hasText: 'from-csr' }).waitFor();
  assert.equal(await page.getByTestId('download-client-key').count(), 0);
  const crt = await download(page, page.getByTestId('download-client-crt'), files);
  const ca = join(files, 'ca.crt');
  assert.equal(openssl('verify', '-CAfile', ca, '-untrusted', crt, crt).trim(), `${crt}: OK`);
  assert.equal(openssl('x509', '-in', crt, '-noout', '-pubkey'), openssl('pkey', '-in', key, '-pubout'));
});

test('a bad CSR shows the field error from the API', async () => {
  await page.getByTestId('cert-name').fill('bad-csr');
  await page.getByTestId('cert-key').selectOption({ label: 'svc-ui-test (default)' });
  await page.getByTestId('cert-mode-csr').check();
  await page.getByTestId('cert-csr').fill('-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----');
  await page.getByTestId('cert-create').click();
  const err = page.getByTestId('error');
  await err.waitFor();
  assert.match(await err.textContent(), /Fix these fields: csr_pem/);
  assert.match(await err.getByTestId('field-errors').textContent(), /CSR/);
});

test('revoking a certificate through the dialog raises the CRL number on the overview', async () => {
  const before = await crlNumber();
  await page.getByTestId('nav-certificates').click();
  const row = page.locator(`[data-testid="cert-row"][data-name="${certName}"]`);
  await row.getByTestId('cert-revoke').click();
  const dialog = page.getByTestId('revoke-dialog');
  await dialog.waitFor();
  // Cancel first: nothing happens.
  await dialog.getByTestId('dialog-cancel').click();
  await dialog.waitFor({ state: 'detached' });
  assert.equal(await row.getAttribute('data-status'), 'active');
  await row.getByTestId('cert-revoke').click();
  await dialog.getByTestId('revoke-reason').selectOption('keyCompromise');
  await screenshot(page, 'certificates-revoke-dialog');
  await dialog.getByTestId('dialog-confirm').click();
  await page.getByTestId('revoked-notice').waitFor();
  await page.locator(`[data-testid="cert-row"][data-name="${certName}"][data-status="revoked"]`).waitFor();
  // Filter by status.
  await page.getByTestId('certs-status').selectOption('revoked');
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="cert-row"]')].every((r) => r.dataset.status === 'revoked'));
  const after = await crlNumber();
  assert.ok(after > before, `CRL number ${before} -> ${after}`);
  assert.equal(await page.getByTestId('stat-revoked').textContent(), '1');
  assert.equal(await page.getByTestId('stat-active').textContent(), '1');
  assert.equal(await page.getByTestId('crl-entries').textContent(), '1');
  await page.getByTestId('expiry-chart').waitFor();
  await screenshot(page, 'overview');
});

test('provisioning a device shows its MQTT username and generated password once', async () => {
  await page.getByTestId('nav-devices').click();
  await page.getByTestId('page-devices').waitFor();
  await page.getByTestId('device-id').fill('dev-001');
  await page.getByTestId('device-tenant').fill('nnn.acme');
  await page.getByTestId('device-create').click();
  await page.getByTestId('device-provisioned').waitFor();
  assert.equal(await page.getByTestId('device-mqtt-username').inputValue(), 'device=dev-001&tenant=nnn.acme');
  assert.ok((await page.getByTestId('device-new-password').inputValue()).length >= 8);
  const row = page.locator('[data-testid="device-row"][data-device-id="dev-001"]');
  assert.equal(await row.getByTestId('device-row-username').textContent(), 'device=dev-001&tenant=nnn.acme');
  // With a given password.
  await page.getByTestId('device-id').fill('dev-002');
  await page.getByTestId('device-tenant').fill('nnn.acme');
  await page.getByTestId('device-cred-password').check();
  await page.getByTestId('device-password').fill('device-secret-1');
  await page.getByTestId('device-create').click();
  await page.locator('[data-testid="device-row"][data-device-id="dev-002"]').waitFor();
  assert.equal(await page.getByTestId('device-new-password').count(), 0);
  // A duplicate shows the API's conflict.
  await page.getByTestId('device-id').fill('dev-002');
  await page.getByTestId('device-tenant').fill('nnn.acme');
  await page.getByTestId('device-create').click();
  assert.match(await page.getByTestId('error').textContent(), /already exists/);
});

test('disabling and rotating a device', async () => {
  const row = page.locator('[data-testid="device-row"][data-device-id="dev-001"]');
  await row.getByTestId('device-toggle').click();
  // Disabling revokes the device's certificates, so it asks first.
  const confirmDisable = page.getByTestId('confirm-dialog');
  assert.match(await confirmDisable.textContent(), /certificates are revoked/);
  await confirmDisable.getByTestId('dialog-confirm').click();
  await row.locator('.badge', { hasText: 'disabled' }).waitFor();
  const d = await server.api('GET', '/api/v4/manage/devices/nnn.acme/dev-001/');
  assert.equal(d.body.is_active, false);
  await row.getByTestId('device-toggle').click();
  await row.locator('.badge', { hasText: 'enabled' }).waitFor();
  await row.getByTestId('device-rotate').click();
  const dialog = page.getByTestId('rotate-dialog');
  await dialog.getByTestId('rotate-cred-ha1').check();
  await dialog.getByTestId('rotate-ha1').fill('0123456789abcdef0123456789abcdef');
  await dialog.getByTestId('dialog-confirm').click();
  await page.getByText('Device dev-001 has new credentials').waitFor();
});

test('a bulk CSV with one bad row reports that row by line and writes nothing', async () => {
  const before = (await server.api('GET', '/api/v4/manage/devices/')).body.count;
  const csv = [
    'device_id,tenant,password,ha1,realm,description',
    'bulk-001,nnn.acme,,,,first',
    '"bulk-002",nnn.acme,,,,"a description, with a comma"',
    'bad id!,nnn.acme,,,,broken',
    'bulk-004,nnn.acme,longenough,,,',
  ].join('\n');
  const file = join(files, 'devices.csv');
  writeFileSync(file, csv);
  await page.getByTestId('bulk-file').setInputFiles(file);
  await page.getByTestId('bulk-upload').click();
  const error = page.getByTestId('bulk-error');
  await error.first().waitFor();
  assert.equal(await error.count(), 1);
  assert.equal(await error.getAttribute('data-line'), '4');
  assert.match(await error.textContent(), /^4bad id!device_id/);
  assert.match(await page.getByTestId('bulk-report').textContent(), /Nothing was written/);
  await screenshot(page, 'devices-bulk-error');
  assert.equal((await server.api('GET', '/api/v4/manage/devices/')).body.count, before);

  // Fixed, it goes through; generated passwords can be downloaded.
  writeFileSync(file, csv.replace('bad id!', 'bulk-003'));
  await page.getByTestId('bulk-file').setInputFiles(file);
  await page.getByTestId('bulk-upload').click();
  await page.getByTestId('bulk-success').waitFor();
  assert.match(await page.getByTestId('bulk-success').textContent(), /Provisioned 4 devices/);
  const creds = readFileSync(await download(page, page.getByTestId('bulk-download'), files), 'utf8');
  assert.equal(creds.trim().split(/\r\n/).length, 1 + 3);
  assert.equal((await server.api('GET', '/api/v4/manage/devices/')).body.count, before + 4);

  // Uploading the same file again: the conflict rows are reported against their lines.
  await page.getByTestId('bulk-file').setInputFiles(file);
  await page.getByTestId('bulk-upload').click();
  await page.getByTestId('bulk-error').first().waitFor();
  assert.deepEqual(await page.getByTestId('bulk-error').evaluateAll((rows) => rows.map((r) => r.dataset.line)), ['2', '3', '4', '5']);
});

test('device search, tenant filter and pagination', async () => {
  await page.getByTestId('devices-search').fill('bulk');
  await page.getByTestId('devices-search').press('Enter');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="device-row"]').length === 4);
  await page.getByTestId('devices-search').fill('');
  await page.getByTestId('devices-tenant').fill('nope');
  await page.getByTestId('devices-tenant').press('Enter');
  await page.getByText('No devices match.').waitFor();
  await page.getByTestId('devices-tenant').fill('nnn.acme');
  await page.getByTestId('devices-tenant').press('Enter');
  await page.getByLabel('Rows per page').selectOption('10');
  // Enough devices for three pages of ten in this tenant.
  const have = (await server.api('GET', '/api/v4/manage/devices/?tenant=nnn.acme')).body.count;
  const rows = Array.from({ length: 21 - have }, (_, i) => ({ device_id: `page-${String(i).padStart(2, '0')}`, tenant: 'nnn.acme' }));
  assert.equal((await server.api('POST', '/api/v4/manage/devices/bulk/', rows)).status, 201);
  await page.getByTestId('devices-search').press('Enter');
  await page.getByText('1–10 of 21 devices · page 1 of 3').waitFor();
  await page.getByTestId('page-next').click();
  await page.getByText('11–20 of 21 devices · page 2 of 3').waitFor();
  await page.getByTestId('page-next').click();
  await page.getByText('21–21 of 21 devices · page 3 of 3').waitFor();
  assert.equal(await page.getByTestId('device-row').count(), 1);
  assert.ok(await page.getByTestId('page-next').isDisabled());
  await page.getByTestId('page-prev').click();
  await page.getByText('11–20 of 21 devices · page 2 of 3').waitFor();
  await page.getByTestId('devices-tenant').fill('');
  await page.getByTestId('devices-search').press('Enter');
  await page.getByText('1–10 of 21 devices · page 1 of 3').waitFor();
  await screenshot(page, 'devices');
});

test('the CA page shows the subject, fingerprint and expiry, and downloads the CA and the CRL', async () => {
  await page.getByTestId('nav-ca').click();
  await page.getByTestId('page-ca').waitFor();
  assert.match(await page.getByTestId('ca-subject').textContent(), /fleetca root CA/);
  const ca = await download(page, page.getByTestId('download-ca'), files);
  const fp = openssl('x509', '-in', ca, '-noout', '-fingerprint', '-sha256').trim().split('=')[1];
  assert.equal(await page.getByTestId('ca-fingerprint').textContent(), fp);
  assert.match(await page.getByTestId('ca-not-after').textContent(), /^\d{4}-\d\d-\d\d \d\d:\d\d UTC \(\d+ days left\)$/);
  // A new installation: the root and the intermediate that issues.
  assert.match(await page.getByTestId('ca-row-1').textContent(), /root.*standby/);
  assert.match(await page.getByTestId('ca-row-2').textContent(), /intermediate.*active.*fleetca/);
  assert.match(await page.getByTestId('ca-live-2').textContent(), /^[1-9]/, 'the certificates made so far are the intermediate\'s');
  // crl.pem holds every CA's CRL: the root's, then the intermediate's (which lists revocations).
  const crl = await download(page, page.getByTestId('download-crl-pem'), files);
  assert.match(openssl('crl', '-in', crl, '-noout', '-text', '-CAfile', ca), /Issuer: CN ?= ?fleetca root CA/);
  assert.match(openssl('storeutl', '-noout', '-text', '-crls', crl), /Serial Number/);
  const der = await download(page, page.getByTestId('download-crl-der'), files);
  assert.match(openssl('crl', '-inform', 'DER', '-in', der, '-noout', '-crlnumber'), /crlNumber=/);
  await screenshot(page, 'ca');
});

test('the CA page adds an intermediate of each kind, imports the one an outside root signed, and explains why activation waits', async () => {
  await page.getByTestId('nav-ca').click();
  await page.getByTestId('page-ca').waitFor();
  // Signed by fleetca's root: it stands by, from the next restart.
  await page.getByTestId('ca-common-name').fill('UI issuing CA 2');
  await page.getByTestId('ca-add').click();
  await page.getByTestId('confirm-dialog').waitFor();
  await page.getByTestId('dialog-confirm').click();
  await page.getByTestId('ca-result').waitFor();
  assert.match(await page.getByTestId('ca-result').textContent(), /CA 3 added \(standby\)/);
  assert.match(await page.getByTestId('ca-next').textContent(), /restart every instance/);
  await page.goto('/#/overview');
  await page.getByTestId('nav-ca').click();
  await page.getByTestId('ca-row-3').waitFor();
  assert.match(await page.getByTestId('ca-state-3').textContent(), /standby \(from the next restart\)/);
  // Activating it before a restart published its CRL is refused, and the page says why.
  await page.getByTestId('ca-activate-3').click();
  await page.getByTestId('dialog-confirm').click();
  assert.match(await page.getByTestId('error').textContent(), /never been published: restart every instance/);

  // Signed by the operator's root: a CSR to download, then the certificate to import.
  await page.getByTestId('ca-signed-by').selectOption('operator');
  await page.getByTestId('ca-common-name').fill('UI operator CA');
  await page.getByTestId('ca-add').click();
  await page.getByTestId('dialog-confirm').click();
  await page.getByTestId('ca-result').waitFor();
  assert.match(await page.getByTestId('ca-result').textContent(), /CA 4 added \(pending\)/);
  const csrFile = await download(page, page.getByTestId('ca-csr-download'), files);
  openssl('req', '-in', csrFile, '-noout', '-verify');
  const root = join(files, 'ui-root');
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${root}.key`, '-out', `${root}.pem`,
    '-days', '3650', '-subj', '/CN=UI Root', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  writeFileSync(join(files, 'ext.cnf'), 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
  openssl('x509', '-req', '-in', csrFile, '-CA', `${root}.pem`, '-CAkey', `${root}.key`, '-days', '1825', '-sha256',
    '-extfile', join(files, 'ext.cnf'), '-out', join(files, 'ui-intermediate.pem'));
  await page.goto('/#/overview');
  await page.getByTestId('nav-ca').click();
  await page.getByTestId('ca-import-4').click();
  // The root pasted where the intermediate goes is refused, naming the field.
  await page.getByTestId('ca-import-cert').fill(readFileSync(`${root}.pem`, 'utf8'));
  await page.getByTestId('ca-import-root').fill(readFileSync(`${root}.pem`, 'utf8'));
  await page.getByTestId('dialog-confirm').click();
  assert.match(await page.getByTestId('error').textContent(), /Intermediate certificate/);
  await page.getByTestId('ca-import-4').click();
  await page.getByTestId('ca-import-cert').fill(readFileSync(join(files, 'ui-intermediate.pem'), 'utf8'));
  await page.getByTestId('ca-import-root').fill(readFileSync(`${root}.pem`, 'utf8'));
  await page.getByTestId('dialog-confirm').click();
  await page.getByTestId('ca-result').waitFor();
  assert.match(await page.getByTestId('ca-result').textContent(), /CA 4 stands by/);
  await screenshot(page, 'ca-rotation');

  // CA 3 is revoked, with a reason (it signed nothing); the page says what follows.
  await page.goto('/#/overview');
  await page.getByTestId('nav-ca').click();
  await page.getByTestId('ca-revoke-3').click();
  await page.getByTestId('ca-revoke-reason').selectOption('superseded');
  await page.getByTestId('dialog-confirm').click();
  await page.getByTestId('ca-result').waitFor();
  assert.match(await page.getByTestId('ca-result').textContent(), /CA 3 revoked, with 0 certificates/);
  assert.match(await page.getByTestId('ca-next').textContent(), /root's CRL lists it now/);
  await page.goto('/#/overview');
  await page.getByTestId('nav-ca').click();
  await page.getByTestId('ca-row-3').waitFor();
  assert.match(await page.getByTestId('ca-state-3').textContent(), /^revoked/);
  assert.equal(await page.getByTestId('ca-revoke-3').count(), 0, 'a revoked CA offers no revoke');
});

test('the account page changes the password, which then signs in', async () => {
  await page.getByTestId('nav-account').click();
  await page.getByTestId('page-account').waitFor();
  await page.getByTestId('current-password').fill('wrong password!');
  await page.getByTestId('new-password').fill('a brand new passphrase');
  await page.getByTestId('confirm-password').fill('a brand new passphrase');
  await page.getByTestId('password-submit').click();
  assert.match(await page.getByTestId('error').textContent(), /current_password|Current password/);
  await page.getByTestId('current-password').fill(ADMIN_PASSWORD);
  await page.getByTestId('new-password').fill('a brand new passphrase');
  await page.getByTestId('confirm-password').fill('a brand new passphrase');
  await page.getByTestId('password-submit').click();
  await page.getByTestId('password-changed').waitFor();
  await screenshot(page, 'account');
  await page.getByTestId('sign-out').click();
  await page.getByTestId('login-form').waitFor();
  await signIn(page, 'admin', 'a brand new passphrase');
  await page.getByTestId('page-overview').waitFor();
});

test('every page works on a phone', async () => {
  const phone = await newPage(browser, server, { viewport: PHONE });
  await signIn(phone, 'admin', 'a brand new passphrase');
  await phone.getByTestId('page-overview').waitFor();
  assert.ok(await phone.getByTestId('nav-keys').isHidden());
  for (const name of ['overview', 'keys', 'certificates', 'devices', 'products', 'ca', 'account']) {
    await phone.getByRole('button', { name: 'Menu' }).click();
    await phone.getByTestId(`nav-${name}`).click();
    await phone.getByTestId(`page-${name}`).waitFor();
    await phone.waitForFunction(() => document.querySelector('.page')?.getAttribute('aria-busy') === 'false');
    // Nothing wider than the screen except inside scrolling wrappers.
    await screenshot(phone, `phone-${name}`);
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${name} overflows by ${overflow}px`);
  }
  assert.deepEqual(phone.problems, []);
  await phone.context().close();
});

test('no script errors or CSP violations happened', () => {
  assert.deepEqual(page.problems, []);
});
