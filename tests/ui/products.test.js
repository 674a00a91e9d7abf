// Products of sign-based devices (EnOS, Alibaba Cloud IoT) in the UI: a product's secret
// shown once, its devices (one at a time and from CSV), device secrets checked through the
// HTTPS dynamic registration, and a manager who sees only its enterprise's products.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, launchBrowser, newPage, signIn, screenshot, download, tempDir, ADMIN_PASSWORD, PHONE } from './harness.js';

let server;
let browser;
let page;
let apiKeyToken;
const files = tempDir();
const MANAGER_PASSWORD = 'acme manager passphrase';
const PK = 'lights-0001';
let productSecret;
let lampSecret;

const ok = (res, status = 201) => {
  assert.equal(res.status, status, JSON.stringify(res.body));
  return res.body;
};

before(async () => {
  server = await startServer('products');
  browser = await launchBrowser();
  page = await newPage(browser, server);
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  ok(await server.api('POST', '/api/v4/manage/users/', { username: 'acme-manager', is_service_account: false, enterprise: 'acme', role: 'manager', password: MANAGER_PASSWORD }));
  apiKeyToken = ok(await server.api('POST', '/api/v4/manage/users/', { username: 'acme-svc', is_service_account: true, enterprise: 'acme' })).token;
  ok(await server.api('POST', '/api/v4/manage/products/', { product_key: 'globexMeter01', name: 'Globex meters', enterprise: 'globex', scheme: 'aliyun' }));
  const acme = ok(await server.api('POST', '/api/v4/manage/products/', { product_key: 'acmeLamps001', name: 'Acme lamps', enterprise: 'acme', scheme: 'enos' }));
  ok(await server.api('POST', `/api/v4/manage/products/${acme.product_key}/devices/`, { device_key: 'acme-lamp-1' }));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** HTTPS dynamic registration as a device would do it; resolves to the JSON answer. */
async function register(productKey, deviceName, secret) {
  const random = randomBytes(8).toString('hex');
  const sign = createHmac('sha256', secret).update(`deviceName${deviceName}productKey${productKey}random${random}`).digest('hex');
  const res = await fetch(`${server.url}/auth/register/device`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ productKey, deviceName, random, signMethod: 'hmacsha256', sign }),
  });
  assert.equal(res.status, 200);
  return res.json();
}

const deviceRow = (key) => page.locator(`[data-testid="product-device-row"][data-device-key="${key}"]`);
const productRow = (key) => page.locator(`[data-testid="product-row"][data-product-key="${key}"]`);
const confirm = () => page.getByTestId('confirm-dialog').getByTestId('dialog-confirm').click();
const devicesOf = async (pk) => ok(await server.api('GET', `/api/v4/manage/products/${pk}/devices/?page_size=100`), 200);

test('an admin creates a product and sees its secret once, with a copy button', async () => {
  await signIn(page, 'admin', ADMIN_PASSWORD);
  await page.getByTestId('page-overview').waitFor();
  await page.getByTestId('nav-products').click();
  await page.getByTestId('page-products').waitFor();
  assert.equal(await page.getByTestId('nav-products').getAttribute('aria-current'), 'page');
  await productRow('globexMeter01').waitFor();

  // A bad product key: the API's field error, under the form's label.
  await page.getByTestId('product-name').fill('Street lights');
  await page.getByTestId('product-key').fill('bad key with spaces!');
  await page.getByTestId('product-create').click();
  assert.match(await page.getByTestId('field-errors').textContent(), /^Product key: /);

  await page.getByTestId('product-key').fill(PK);
  await page.getByTestId('product-scheme').selectOption('aliyun');
  await page.getByTestId('product-enterprise').fill('nnn.acme');
  await page.getByTestId('product-dynamic').check();
  // No freshness check by default, as on the platforms; a product may still ask for one.
  assert.equal(await page.getByTestId('product-skew').inputValue(), '');
  await page.getByTestId('product-skew').fill('300');
  await page.getByTestId('product-create').click();
  const panel = page.getByTestId('product-secret-panel');
  await panel.waitFor();
  assert.match(await panel.textContent(), /you will not see it again/);
  assert.equal(await page.getByTestId('product-secret-key').inputValue(), PK);
  productSecret = await page.getByTestId('product-secret').inputValue();
  assert.match(productSecret, /^[A-Za-z0-9]{32}$/);
  await panel.getByRole('button', { name: 'Copy Product secret' }).click();
  await panel.getByText('Copied.').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), productSecret);
  // The form is back to its defaults; the product is listed and stored as asked.
  assert.equal(await page.getByTestId('product-name').inputValue(), '');
  await productRow(PK).waitFor();
  assert.match(await productRow(PK).textContent(), /Street lights.*nnn\.acme.*Alibaba Cloud IoT.*dynamic activation.*enabled/);
  const stored = ok(await server.api('GET', `/api/v4/manage/products/${PK}/`), 200);
  assert.deepEqual(
    [stored.name, stored.enterprise, stored.scheme, stored.dynamic_activation, stored.max_clock_skew_seconds, stored.is_active],
    ['Street lights', 'nnn.acme', 'aliyun', true, 300, true],
  );
  assert.equal(stored.product_secret, undefined);
  await screenshot(page, 'products');
  // Gone after a reload: the secret is never shown again.
  await page.reload();
  await productRow(PK).waitFor();
  assert.equal(await page.getByTestId('product-secret-panel').count(), 0);
  assert.equal(await page.getByText(productSecret).count(), 0);
});

test('the product list filters by search and scheme', async () => {
  await page.getByTestId('products-scheme').selectOption('enos');
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="product-row"]')].map((r) => r.dataset.productKey).join() === 'acmeLamps001');
  await page.getByTestId('products-scheme').selectOption('');
  await page.getByTestId('products-search').fill('lights');
  await page.getByTestId('products-search').press('Enter');
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="product-row"]')].map((r) => r.dataset.productKey).join() === 'lights-0001');
  await page.getByTestId('products-enterprise').fill('globex');
  await page.getByTestId('products-search').press('Enter');
  await page.getByText('No products match.').waitFor();
  await page.getByTestId('products-enterprise').fill('');
  await page.getByTestId('products-search').fill('');
  await page.getByTestId('products-search').press('Enter');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="product-row"]').length === 3);
});

test('rotating a product secret shows the new one once; the old one stops working', async () => {
  await productRow(PK).getByTestId('product-rotate').click();
  await page.getByTestId('confirm-dialog').waitFor();
  assert.match(await page.getByTestId('confirm-dialog').textContent(), /stops working at once/);
  await confirm();
  await page.getByText('Product Street lights has a new secret').waitFor();
  const rotated = await page.getByTestId('product-secret').inputValue();
  assert.match(rotated, /^[A-Za-z0-9]{32}$/);
  assert.notEqual(rotated, productSecret);
  const old = productSecret;
  productSecret = rotated;
  // Checked by a registration below, which signs with the product secret: the old one is refused.
  ok(await server.api('POST', `/api/v4/manage/products/${PK}/devices/`, { device_key: 'probe' }));
  assert.equal((await register(PK, 'probe', old)).code, 403);
  assert.equal((await register(PK, 'probe', productSecret)).code, 200);
  ok(await server.api('DELETE', `/api/v4/manage/products/${PK}/devices/probe/`), 204);
});

test('adding a device shows its generated secret once, and the copy button copies it', async () => {
  await productRow(PK).getByTestId('product-open').click();
  await page.getByTestId('product-detail').waitFor();
  assert.equal(new URL(page.url()).hash, `#/products/${PK}`);
  assert.equal(await page.getByTestId('nav-products').getAttribute('aria-current'), 'page');
  assert.equal(await page.getByTestId('product-title').textContent(), 'Street lights');
  assert.match(await page.getByTestId('product-facts').textContent(), /lights-0001.*nnn\.acme.*Alibaba Cloud IoT.*yes.*± 300 s.*enabled/);
  await page.getByText('No devices match.').waitFor();

  await page.getByTestId('product-device-key').fill('lamp-001');
  await page.getByTestId('product-device-description').fill('north gate');
  await page.getByTestId('product-device-create').click();
  const panel = page.getByTestId('product-device-created');
  await panel.waitFor();
  assert.match(await panel.textContent(), /Device lamp-001 added.*you will not see it again/);
  assert.equal(await page.getByTestId('product-device-username').inputValue(), `lamp-001&${PK}`);
  lampSecret = await page.getByTestId('product-device-secret').inputValue();
  assert.match(lampSecret, /^[A-Za-z0-9]{32}$/);
  await panel.getByRole('button', { name: 'Copy Device secret' }).click();
  await panel.getByText('Copied.').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), lampSecret);
  assert.equal(await deviceRow('lamp-001').getByTestId('product-device-row-username').textContent(), `lamp-001&${PK}`);
  assert.match(await deviceRow('lamp-001').textContent(), /north gate.*not activated.*enabled/);
  await screenshot(page, 'product-device-created');

  // The secret shown is the device's: dynamic registration with the product secret hands it out.
  const reg = await register(PK, 'lamp-001', productSecret);
  assert.equal(reg.code, 200, JSON.stringify(reg));
  assert.equal(reg.data.deviceSecret, lampSecret);

  // With a secret of one's own: nothing to show.
  await page.getByTestId('product-device-key').fill('lamp-002');
  await page.getByTestId('product-device-secret-set').check();
  await page.getByTestId('product-device-secret-input').fill('given-secret-123');
  await page.getByTestId('product-device-create').click();
  await page.getByText('Device lamp-002 added').waitFor();
  assert.equal(await page.getByTestId('product-device-secret').count(), 0);
  assert.match(await panel.textContent(), /The device secret you gave is stored sealed/);
  assert.ok(await page.getByTestId('product-device-secret-input').isHidden(), 'the form is back to "generate"');
  // A duplicate shows the API's conflict; a bad secret its field error.
  await page.getByTestId('product-device-key').fill('lamp-002');
  await page.getByTestId('product-device-create').click();
  assert.match(await page.getByTestId('error').textContent(), /already exists/);
  await page.getByTestId('product-device-key').fill('lamp-003');
  await page.getByTestId('product-device-secret-set').check();
  await page.getByTestId('product-device-secret-input').fill('has a space in this secret');
  await page.getByTestId('product-device-create').click();
  assert.match(await page.getByTestId('field-errors').textContent(), /^Device secret: /);
  assert.deepEqual((await devicesOf(PK)).results.map((d) => d.device_key), ['lamp-001', 'lamp-002']);

  // After a reload the list shows lamp-001 activated, and no secret.
  await page.reload();
  await deviceRow('lamp-001').waitFor();
  assert.equal(await deviceRow('lamp-001').getAttribute('data-activated'), 'true');
  assert.match(await deviceRow('lamp-001').getByTestId('product-device-activation').textContent(), /^activated\d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
  assert.equal(await page.getByText(lampSecret).count(), 0);
});

test('a bulk CSV with bad lines reports them by CSV line and writes nothing; fixed, it adds all', async () => {
  const before = (await devicesOf(PK)).count;
  const file = join(files, 'product-devices.csv');

  // Caught before sending: an unknown column.
  writeFileSync(file, 'device_key,colour\nx,red\n');
  await page.getByTestId('product-bulk-file').setInputFiles(file);
  await page.getByTestId('product-bulk-upload').click();
  await page.getByTestId('product-bulk-error').first().waitFor();
  assert.match(await page.getByTestId('product-bulk-error').textContent(), /^1header.*unknown column\(s\): colour/);

  // Refused by the API: rows 0, 1 and 2 of the request are lines 2, 4 and 5 of the file
  // (row 0's description spans two lines, and a description may not hold a line break).
  const csv = [
    'device_key,device_secret,description',
    'bulk-01,,"first,',
    'on two lines"',
    'bulk-02,short,second',
    'bad key!,,third',
    'bulk-04,a-long-enough-secret,"with, a comma"',
  ].join('\n');
  writeFileSync(file, csv);
  await page.getByTestId('product-bulk-file').setInputFiles(file);
  await page.getByTestId('product-bulk-upload').click();
  await page.getByTestId('product-bulk-report').getByText('Nothing was written').waitFor();
  const errors = page.getByTestId('product-bulk-error');
  assert.deepEqual(await errors.evaluateAll((rows) => rows.map((r) => r.dataset.line)), ['2', '4', '5']);
  assert.match(await errors.nth(0).textContent(), /^2bulk-01description.*control characters/);
  assert.match(await errors.nth(1).textContent(), /^4bulk-02device_secret.*16 to 128/);
  assert.match(await errors.nth(2).textContent(), /^5bad key!device_key/);
  assert.match(await page.getByTestId('product-bulk-report').textContent(), /3 lines have problems\. Nothing was written\./);
  await screenshot(page, 'product-devices-bulk-error');
  assert.equal((await devicesOf(PK)).count, before);

  // Fixed (a blank line is skipped): all four are added; the two generated secrets can be
  // downloaded.
  const fixed = [
    'device_key,device_secret,description',
    'bulk-01,,"first, fixed"',
    '',
    'bulk-02,long-enough-secret-1,second',
    'meter:05@site,,third',
    'bulk-04,a-long-enough-secret,"with, a comma"',
  ].join('\r\n');
  writeFileSync(file, fixed);
  await page.getByTestId('product-bulk-file').setInputFiles(file);
  await page.getByTestId('product-bulk-upload').click();
  await page.getByTestId('product-bulk-success').waitFor();
  assert.match(await page.getByTestId('product-bulk-success').textContent(), /Added 4 devices/);
  const creds = readFileSync(await download(page, page.getByTestId('product-bulk-download'), files), 'utf8').trim().split(/\r\n/);
  assert.equal(creds[0], 'product_key,device_key,mqtt_username,device_secret');
  assert.deepEqual(creds.slice(1).map((l) => l.split(',').slice(0, 3).join()), [`${PK},bulk-01,bulk-01&${PK}`, `${PK},meter:05@site,meter:05@site&${PK}`]);
  const after = await devicesOf(PK);
  assert.equal(after.count, before + 4);
  assert.equal(after.results.find((d) => d.device_key === 'bulk-01').description, 'first, fixed');
  assert.equal(after.results.find((d) => d.device_key === 'bulk-04').description, 'with, a comma');
  await deviceRow('meter:05@site').waitFor();
  // The generated secret in the file is the device's.
  const meterSecret = creds[2].split(',')[3];
  assert.equal((await register(PK, 'meter:05@site', productSecret)).data.deviceSecret, meterSecret);

  // The same file again: each existing device is reported against its line.
  await page.getByTestId('product-bulk-file').setInputFiles(file);
  await page.getByTestId('product-bulk-upload').click();
  await page.getByTestId('product-bulk-error').first().waitFor();
  assert.deepEqual(await page.getByTestId('product-bulk-error').evaluateAll((rows) => rows.map((r) => r.dataset.line)), ['2', '4', '5', '6']);
  assert.match(await page.getByTestId('product-bulk-error').first().textContent(), /already exists/);
  assert.equal((await devicesOf(PK)).count, before + 4);
});

test('rotating a device secret shows the new one; reset activation lets the device obtain it', async () => {
  await deviceRow('lamp-001').getByTestId('product-device-rotate').click();
  await confirm();
  await page.getByText('Device lamp-001 has a new secret').waitFor();
  const rotated = await page.getByTestId('product-device-secret').inputValue();
  assert.match(rotated, /^[A-Za-z0-9]{32}$/);
  assert.notEqual(rotated, lampSecret);
  await page.getByTestId('product-device-created').getByRole('button', { name: 'Copy Device secret' }).click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), rotated);

  // Activated already: registration is refused until the activation is reset.
  assert.equal((await register(PK, 'lamp-001', productSecret)).code, 403);
  const row = deviceRow('lamp-001');
  assert.equal(await row.getAttribute('data-activated'), 'true');
  await row.getByTestId('product-device-reset').click();
  await page.getByTestId('confirm-dialog').waitFor();
  assert.match(await page.getByTestId('confirm-dialog').textContent(), /Reset the activation of lamp-001/);
  await confirm();
  await page.getByText('lamp-001 may activate again.').waitFor();
  await page.locator('[data-testid="product-device-row"][data-device-key="lamp-001"][data-activated="false"]').waitFor();
  assert.equal(await row.getByTestId('product-device-reset').count(), 0);
  assert.equal(await row.getByTestId('product-device-activation').textContent(), 'not activated');
  const reg = await register(PK, 'lamp-001', productSecret);
  assert.equal(reg.code, 200, JSON.stringify(reg));
  assert.equal(reg.data.deviceSecret, rotated);
  lampSecret = rotated;
});

test('disabling a device refuses it; enabling lets it back', async () => {
  const row = deviceRow('lamp-002');
  await row.getByTestId('product-device-toggle').click();
  await row.locator('.badge', { hasText: 'disabled' }).waitFor();
  assert.equal(await page.getByTestId('notice').textContent(), 'lamp-002 is disabled.');
  assert.equal(ok(await server.api('GET', `/api/v4/manage/products/${PK}/devices/lamp-002/`), 200).is_active, false);
  assert.equal((await register(PK, 'lamp-002', productSecret)).code, 403);
  // The status filter shows it alone.
  await page.getByTestId('product-devices-status').selectOption('false');
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="product-device-row"]')].map((r) => r.dataset.deviceKey).join() === 'lamp-002');
  await screenshot(page, 'product-devices-disabled');
  await row.getByTestId('product-device-toggle').click();
  await page.getByText('No devices match.').waitFor();
  await page.getByTestId('product-devices-status').selectOption('');
  await row.locator('.badge', { hasText: 'enabled' }).waitFor();
  assert.equal(ok(await server.api('GET', `/api/v4/manage/products/${PK}/devices/lamp-002/`), 200).is_active, true);
});

test('deleting a device (a key with ":" and "@") asks first', async () => {
  const row = deviceRow('meter:05@site');
  await row.getByTestId('product-device-delete').click();
  await page.getByTestId('confirm-dialog').waitFor();
  await page.keyboard.press('Escape');
  await page.getByTestId('confirm-dialog').waitFor({ state: 'detached' });
  assert.equal((await server.api('GET', `/api/v4/manage/products/${PK}/devices/meter%3A05%40site/`)).status, 200);
  await row.getByTestId('product-device-delete').click();
  await confirm();
  await page.getByText('meter:05@site was deleted.').waitFor();
  await row.waitFor({ state: 'detached' });
  assert.equal((await server.api('GET', `/api/v4/manage/products/${PK}/devices/meter%3A05%40site/`)).status, 404);
});

test("a product's settings change, it is disabled, and deleting it takes its devices", async () => {
  await page.getByTestId('product-edit').click();
  const dialog = page.getByTestId('edit-dialog');
  await dialog.getByTestId('edit-name').fill('Street lights v2');
  await dialog.getByTestId('edit-skew').fill('');
  await dialog.getByTestId('edit-dynamic').uncheck();
  await dialog.getByTestId('dialog-confirm').click();
  await page.getByText('Street lights v2 was saved.').waitFor();
  assert.equal(await page.getByTestId('product-title').textContent(), 'Street lights v2');
  assert.equal(await page.getByTestId('product-fact-skew').textContent(), 'not checked');
  assert.equal(await page.getByTestId('product-fact-dynamic').textContent(), 'no');
  let stored = ok(await server.api('GET', `/api/v4/manage/products/${PK}/`), 200);
  assert.deepEqual([stored.name, stored.max_clock_skew_seconds, stored.dynamic_activation], ['Street lights v2', null, false]);

  await page.getByTestId('product-toggle').click();
  await page.getByTestId('product-fact-status').getByText('disabled').waitFor();
  assert.equal(await page.getByTestId('product-toggle').textContent(), 'Enable product');
  stored = ok(await server.api('GET', `/api/v4/manage/products/${PK}/`), 200);
  assert.equal(stored.is_active, false);
  await screenshot(page, 'product-detail');

  await page.getByTestId('product-delete').click();
  await page.getByTestId('confirm-dialog').waitFor();
  assert.match(await page.getByTestId('confirm-dialog').textContent(), /and all its devices are deleted/);
  await confirm();
  await page.getByTestId('products-list').waitFor();
  assert.equal(new URL(page.url()).hash, '#/products');
  assert.equal(await page.getByTestId('notice').textContent(), `Street lights v2 (${PK}) was deleted with its devices.`);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="product-row"]').length === 2);
  assert.equal(await productRow(PK).count(), 0);
  assert.equal((await server.api('GET', `/api/v4/manage/products/${PK}/`)).status, 404);
  assert.equal((await server.api('GET', `/api/v4/manage/products/${PK}/devices/lamp-001/`)).status, 404);
});

test('a product that does not exist shows the error and a way back', async () => {
  await page.goto('/#/products/noSuchProduct1');
  await page.getByTestId('products-back').waitFor();
  assert.match(await page.getByTestId('error').textContent(), /No product/);
  await page.getByTestId('products-back').click();
  await page.getByTestId('products-list').waitFor();
});

test('a manager sees only its enterprise’s products and cannot open another’s', async () => {
  const manager = await newPage(browser, server);
  await signIn(manager, 'acme-manager', MANAGER_PASSWORD);
  await manager.getByTestId('page-overview').waitFor();
  await manager.getByTestId('nav-products').click();
  await manager.locator('[data-testid="product-row"]').first().waitFor();
  assert.deepEqual(await manager.getByTestId('product-row').evaluateAll((r) => r.map((e) => e.dataset.productKey)), ['acmeLamps001']);
  assert.equal(await manager.getByTestId('products-enterprise').count(), 0);
  assert.equal(await manager.getByTestId('product-enterprise').count(), 0);
  assert.equal(await manager.getByText('globex', { exact: false }).count(), 0);
  // A product the manager creates lands in acme.
  await manager.getByTestId('product-name').fill('Acme meters');
  await manager.getByTestId('product-create').click();
  await manager.getByTestId('product-secret-panel').waitFor();
  const key = await manager.getByTestId('product-secret-key').inputValue();
  assert.equal(ok(await server.api('GET', `/api/v4/manage/products/${key}/`), 200).enterprise, 'acme');
  await manager.waitForFunction(() => document.querySelectorAll('[data-testid="product-row"]').length === 2);
  await screenshot(manager, 'manager-products');
  // Its own product opens with its device; globex's does not exist for it.
  await manager.locator('[data-testid="product-row"][data-product-key="acmeLamps001"]').getByTestId('product-open').click();
  await manager.locator('[data-testid="product-device-row"][data-device-key="acme-lamp-1"]').waitFor();
  assert.match(await manager.getByTestId('product-facts').textContent(), /EnOS/);
  await manager.goto('/#/products/globexMeter01');
  await manager.getByTestId('products-back').waitFor();
  assert.match(await manager.getByTestId('error').textContent(), /No product/);
  assert.equal(await manager.getByText('Globex meters').count(), 0);
  await screenshot(manager, 'manager-product-not-found');
  // Nor through its session directly.
  const status = await manager.evaluate(async () => (await fetch('/api/v4/manage/products/globexMeter01/devices/')).status);
  assert.equal(status, 404);
  assert.deepEqual(manager.problems, []);
  await manager.context().close();
});

test('API keys are refused products, like devices', async () => {
  for (const path of ['/api/v4/manage/products/', '/api/v4/manage/products/acmeLamps001/devices/', '/api/v4/manage/devices/']) {
    const res = await server.api('GET', path, undefined, apiKeyToken);
    assert.equal(res.status, 403, path);
  }
  const create = await server.api('POST', '/api/v4/manage/products/', { name: 'x', scheme: 'enos' }, apiKeyToken);
  assert.equal(create.status, 403);
  // An API key has no password, so it cannot sign in to the UI at all.
  const login = await fetch(`${server.url}/api/v4/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'acme-svc', password: 'any password at all' }),
  });
  assert.equal(login.status, 401);
});

test('the products pages work on a phone', async () => {
  const phone = await newPage(browser, server, { viewport: PHONE });
  await signIn(phone, 'admin', ADMIN_PASSWORD);
  await phone.getByTestId('page-overview').waitFor();
  await phone.getByRole('button', { name: 'Menu' }).click();
  await phone.getByTestId('nav-products').click();
  await phone.locator('[data-testid="product-row"]').first().waitFor();
  const overflow = () => phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await screenshot(phone, 'phone-products');
  assert.ok((await overflow()) <= 0, `the list overflows by ${await overflow()}px`);
  await phone.locator('[data-testid="product-row"][data-product-key="acmeLamps001"]').getByTestId('product-open').click();
  await phone.locator('[data-testid="product-device-row"]').first().waitFor();
  await phone.waitForFunction(() => document.querySelector('.page')?.getAttribute('aria-busy') === 'false');
  await screenshot(phone, 'phone-product');
  assert.ok((await overflow()) <= 0, `the product page overflows by ${await overflow()}px`);
  assert.deepEqual(phone.problems, []);
  await phone.context().close();
});

test('no script errors or CSP violations happened', () => {
  assert.deepEqual(page.problems, []);
});
