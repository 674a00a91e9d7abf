// A manager of one enterprise sees nothing of another, on every page.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, signIn, screenshot } from './harness.js';

let server;
let browser;
let page;
const MANAGER_PASSWORD = 'acme manager passphrase';

before(async () => {
  server = await startServer('manager');
  browser = await launchBrowser();
  page = await newPage(browser, server);
  const ok = (res, status = 201) => {
    assert.equal(res.status, status, JSON.stringify(res.body));
    return res.body;
  };
  // globex: an API key with a certificate, a revoked one, and devices.
  const globexKey = ok(await server.api('POST', '/api/v4/manage/users/', { username: 'globex-svc', is_service_account: true, enterprise: 'globex' }));
  for (const name of ['globex-cert-1', 'globex-cert-2']) {
    ok(await server.api('POST', '/api/v4/manage/mqtt-certificates/', { name, api_key_id: globexKey.id, validity_hours: 8760 }));
  }
  const certs = ok(await server.api('GET', '/api/v4/manage/mqtt-certificates/?search=globex-cert-2'), 200);
  ok(await server.api('POST', `/api/v4/manage/mqtt-certificates/${certs.results[0].id}/revoke/`, { reason: 'superseded' }), 200);
  ok(await server.api('POST', '/api/v4/manage/devices/bulk/', [
    { device_id: 'globex-dev-1', tenant: 'globex' },
    { device_id: 'globex-dev-2', tenant: 'globex' },
  ]));
  // acme: the manager, one API key with a certificate, one device.
  ok(await server.api('POST', '/api/v4/manage/users/', { username: 'acme-manager', is_service_account: false, enterprise: 'acme', role: 'manager', password: MANAGER_PASSWORD }));
  const acmeKey = ok(await server.api('POST', '/api/v4/manage/users/', { username: 'acme-svc', is_service_account: true, enterprise: 'acme' }));
  ok(await server.api('POST', '/api/v4/manage/mqtt-certificates/', { name: 'acme-cert', api_key_id: acmeKey.id, validity_hours: 3 * 8760 }));
  ok(await server.api('POST', '/api/v4/manage/devices/', { device_id: 'acme-dev-1', tenant: 'acme' }));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the manager signs in and the overview counts only acme', async () => {
  await signIn(page, 'acme-manager', MANAGER_PASSWORD);
  await page.getByTestId('page-overview').waitFor();
  assert.match(await page.getByTestId('whoami').textContent(), /acme-manager · manager · acme/);
  assert.equal(await page.getByTestId('stat-api-keys').textContent(), '1');
  assert.equal(await page.getByTestId('stat-active').textContent(), '1');
  assert.equal(await page.getByTestId('stat-revoked').textContent(), '0');
  assert.equal(await page.getByTestId('stat-devices').textContent(), '1');
  const bars = await page.locator('[data-testid="expiry-chart"] g[data-count]:not([data-count="0"])').evaluateAll((g) => g.map((e) => e.dataset.count));
  assert.deepEqual(bars, ['1']);
  await screenshot(page, 'manager-overview');
});

test('the manager sees only acme API keys', async () => {
  await page.getByTestId('nav-keys').click();
  await page.locator('[data-testid="key-row"]').first().waitFor();
  assert.deepEqual(await page.getByTestId('key-row').evaluateAll((r) => r.map((e) => e.dataset.username)), ['acme-svc']);
  assert.equal(await page.getByTestId('keys-enterprise').count(), 0);
  assert.equal(await page.getByText('globex').count(), 0);
  await screenshot(page, 'manager-keys');
});

test('the manager sees only acme certificates, and no globex key to pick', async () => {
  await page.getByTestId('nav-certificates').click();
  await page.locator('[data-testid="cert-row"]').first().waitFor();
  assert.deepEqual(await page.getByTestId('cert-row').evaluateAll((r) => r.map((e) => e.dataset.name)), ['acme-cert']);
  const options = await page.getByTestId('cert-key').locator('option').allTextContents();
  assert.deepEqual(options.slice(1), ['acme-svc']);
  await page.getByTestId('certs-status').selectOption('revoked');
  await page.getByText('No certificates match.').waitFor();
  assert.equal(await page.getByText('globex').count(), 0);
  await screenshot(page, 'manager-certificates');
});

test('the manager sees only acme devices and cannot provision into globex', async () => {
  await page.getByTestId('nav-devices').click();
  await page.locator('[data-testid="device-row"]').first().waitFor();
  assert.deepEqual(await page.getByTestId('device-row').evaluateAll((r) => r.map((e) => e.dataset.deviceId)), ['acme-dev-1']);
  await page.getByTestId('devices-tenant').fill('globex');
  await page.getByTestId('devices-tenant').press('Enter');
  await page.getByText('No devices match.').waitFor();
  await page.getByTestId('device-id').fill('sneaky');
  await page.getByTestId('device-tenant').fill('globex');
  await page.getByTestId('device-create').click();
  assert.match(await page.getByTestId('error').textContent(), /only provision devices of your enterprise/);
  assert.equal((await server.api('GET', '/api/v4/manage/devices/?tenant=globex')).body.count, 2);
  await screenshot(page, 'manager-devices');
});

test("the manager's session cannot reach a globex object through the API", async () => {
  const globex = (await server.api('GET', '/api/v4/manage/mqtt-certificates/?search=globex-cert-1')).body.results[0];
  const status = await page.evaluate(async (id) => (await fetch(`/api/v4/manage/mqtt-certificates/${id}/`)).status, globex.id);
  assert.equal(status, 404);
  // And a state change without the CSRF header is refused.
  const csrf = await page.evaluate(async () => (await fetch('/api/v4/manage/devices/', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ device_id: 'no-csrf', tenant: 'acme' }),
  })).status);
  assert.equal(csrf, 403);
});

test('no script errors happened', () => {
  assert.deepEqual(page.problems, []);
});
