// Webhooks in the UI, against a receiver on loopback (the server allows private receivers and
// retries after 0.2 s): an endpoint for certificate.issued created with its signing secret
// shown once, a test event and a certificate's issuance delivered, signed with that secret and
// shown in the delivery log, the secret rotated, a refused delivery retried, given up once the
// endpoint is paused and redelivered, the endpoint deleted; a manager sees and makes only its
// enterprise's endpoints; a server without webhook_allow_private refuses an internal URL; the
// page fits a phone.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHmac } from 'node:crypto';
import { startServer, launchBrowser, newPage, signIn, screenshot, ADMIN_PASSWORD, PHONE } from './harness.js';

const HOOKS = '/api/v4/manage/webhooks/';
const EVENTS = [
  'certificate.issued', 'certificate.revoked', 'certificate.expiring', 'certificate.renewed',
  'device.disabled', 'device.deleted', 'api_key.deactivated', 'crl.publication_failed',
  'ca.expiring', 'broker.revocation_not_enforced',
];
const MANAGER_PASSWORD = 'acme manager passphrase';
/** How long a delivery may take to show in the log (the log reads itself every 2 s). */
const DELIVERY_TIMEOUT = 20_000;

let server;
let browser;
let page;
let receiver;
let hook; // the endpoint made through the UI, as the API lists it
let secret; // its signing secret, as the UI showed it

const ok = (res, status = 201) => {
  assert.equal(res.status, status, JSON.stringify(res.body));
  return res.body;
};

/** A receiver on loopback: records every request and answers `status` (204 to begin with). */
function startReceiver() {
  return new Promise((resolve, reject) => {
    const state = { status: 204, received: [], url: null, close: null };
    const srv = createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        state.received.push({ method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(state.status);
        res.end();
      });
    });
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      state.url = `http://127.0.0.1:${srv.address().port}/hooks/fleetca`;
      state.close = () =>
        new Promise((r) => {
          srv.closeAllConnections();
          srv.close(r);
        });
      resolve(state);
    });
  });
}

/** Waits for the receiver to get an event of `type`, from its `from`th request on. */
async function received(type, from = 0) {
  const deadline = Date.now() + DELIVERY_TIMEOUT;
  for (;;) {
    const msg = receiver.received.slice(from).find((m) => JSON.parse(m.body || '{}').type === type);
    if (msg) return msg;
    if (Date.now() > deadline) throw new Error(`the receiver got no ${type} event: ${JSON.stringify(receiver.received.map((m) => m.body))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Whether a request carries a Standard Webhooks signature made with `key` (whsec_…). */
function signedWith(msg, key) {
  const bytes = Buffer.from(key.slice('whsec_'.length), 'base64');
  const content = `${msg.headers['webhook-id']}.${msg.headers['webhook-timestamp']}.${msg.body}`;
  const want = `v1,${createHmac('sha256', bytes).update(content).digest('base64')}`;
  return (msg.headers['webhook-signature'] || '').split(' ').includes(want);
}

before(async () => {
  // Failing deliveries are retried every 0.2 s, doubling, and given up after 6 s.
  server = await startServer('webhooks', {
    settings: { webhook_allow_private: true, webhook_retry_initial_seconds: 0.2, webhook_retry_hours: 6 / 3600 },
  });
  receiver = await startReceiver();
  browser = await launchBrowser();
  page = await newPage(browser, server);
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  ok(await server.api('POST', '/api/v4/manage/users/', { username: 'acme-manager', is_service_account: false, enterprise: 'acme', role: 'manager', password: MANAGER_PASSWORD }));
  await signIn(page, 'admin', ADMIN_PASSWORD);
  await page.getByTestId('page-overview').waitFor();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await receiver?.close();
});

/** Opens a page afresh (nothing shown once survives) and waits until it has loaded. */
async function open(name, p = page) {
  await p.goto(`/#/${name}`);
  await p.reload();
  await p.locator(`[data-testid="page-${name}"][aria-busy="false"]`).waitFor();
}

const hookRow = (id = hook.id, p = page) => p.locator(`[data-testid="webhook-row"][data-id="${id}"]`);
/** The delivery log under an endpoint's row. */
const logOf = (id = hook.id, p = page) => p.locator(`[data-testid="webhook-deliveries"][data-id="${id}"]`);
const deliveryRow = (type, status, id = hook.id, p = page) =>
  logOf(id, p).locator(`[data-testid="delivery-row"][data-event-type="${type}"][data-status="${status}"]`);
const deliveries = async (query = '') => ok(await server.api('GET', `${HOOKS}${hook.id}/deliveries/?page_size=100${query}`), 200);
const noOverflow = (p) => p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);

test('an admin creates a webhook for certificate.issued and sees its signing secret once', async () => {
  await open('webhooks');
  assert.equal(await page.getByTestId('nav-webhooks').getAttribute('aria-current'), 'page');
  // The nav entry sits after Products.
  const nav = await page.locator('#nav a').evaluateAll((links) => links.map((a) => a.dataset.testid));
  assert.equal(nav.indexOf('nav-webhooks'), nav.indexOf('nav-products') + 1);
  await page.getByText('No webhooks yet.').waitFor();
  // Every event, fleetca's own included for an admin.
  assert.deepEqual(await page.locator('input[name="events"]').evaluateAll((boxes) => boxes.map((b) => b.value)), EVENTS);

  // No event chosen: the API's field error, under the form's label.
  await page.getByTestId('webhook-url').fill(receiver.url);
  await page.getByTestId('webhook-create').click();
  assert.match(await page.getByTestId('field-errors').textContent(), /^Events: /);
  // fleetca's own events are for endpoints of every enterprise only.
  const crl = page.getByTestId('webhook-event-crl.publication_failed');
  const canary = page.getByTestId('webhook-event-broker.revocation_not_enforced');
  await page.getByTestId('webhook-enterprise').fill('acme');
  assert.ok(await crl.isDisabled());
  assert.ok(await canary.isDisabled());
  await page.getByTestId('webhook-enterprise').fill('');
  assert.ok(await crl.isEnabled());
  assert.ok(await canary.isEnabled());

  await page.getByTestId('webhook-description').fill('Orders system');
  await page.getByLabel('certificate.issued', { exact: true }).check();
  await page.getByTestId('webhook-create').click();
  const panel = page.getByTestId('webhook-secret-panel');
  await panel.waitFor();
  assert.match(await panel.textContent(), /Webhook created.*you will not see it again/);
  assert.equal(await page.getByTestId('webhook-secret-url').textContent(), receiver.url);
  secret = await page.getByTestId('webhook-secret').inputValue();
  assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
  await panel.getByRole('button', { name: 'Copy Signing secret' }).click();
  await panel.getByText('Copied.').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
  // The form is back to its defaults.
  assert.equal(await page.getByTestId('webhook-url').inputValue(), '');
  assert.equal(await page.getByTestId('webhook-event-certificate.issued').isChecked(), false);

  // Stored as asked, without the secret.
  const listed = ok(await server.api('GET', HOOKS), 200);
  assert.equal(listed.count, 1);
  hook = listed.results[0];
  assert.deepEqual(
    [hook.url, hook.events, hook.enterprise, hook.is_active, hook.description, hook.created_by],
    [receiver.url, ['certificate.issued'], null, true, 'Orders system', 'admin'],
  );
  assert.equal(hook.secret, undefined);
  // Listed: URL, events, every enterprise, active.
  await hookRow().waitFor();
  assert.equal(await hookRow().getAttribute('data-url'), receiver.url);
  assert.match(await hookRow().textContent(), /hooks\/fleetca.*Orders system.*certificate\.issued.*all.*active.*by admin/);
  assert.equal(await hookRow().getByTestId('webhook-row-enterprise').textContent(), 'all');
  assert.equal(await hookRow().getByTestId('webhook-row-status').textContent(), 'active');
  assert.equal(await hookRow().getByTestId('webhook-toggle').textContent(), 'Pause');
  await screenshot(page, 'webhooks');

  // Gone after a reload: the secret is never shown again.
  await page.reload();
  await hookRow().waitFor();
  assert.equal(await page.getByTestId('webhook-secret-panel').count(), 0);
  assert.equal(await page.getByText(secret).count(), 0);
});

test('a test event is delivered, signed with that secret, and the delivery log shows it delivered', async () => {
  const from = receiver.received.length;
  const toggle = hookRow().getByTestId('webhook-deliveries-toggle');
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
  await hookRow().getByTestId('webhook-test').click();
  await page.getByTestId('webhook-test-queued').waitFor();

  // The endpoint's delivery log opens under its row and follows the delivery.
  const log = logOf();
  await log.waitFor();
  assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
  assert.equal(await toggle.getAttribute('aria-controls'), await log.getAttribute('id'));
  assert.equal(await log.getByRole('heading', { name: `Deliveries to ${receiver.url}` }).count(), 1);
  const row = deliveryRow('webhook.test', 'delivered');
  await row.waitFor({ timeout: DELIVERY_TIMEOUT });
  assert.equal(await row.getByTestId('delivery-status').textContent(), 'delivered');
  assert.equal(await row.getByTestId('delivery-attempts').textContent(), '1');
  assert.equal(await row.getByTestId('delivery-last-status').textContent(), '204');
  assert.equal(await row.getByTestId('delivery-last-error').count(), 0);
  assert.equal(await row.getByTestId('delivery-redeliver').count(), 0);

  // What the receiver got: a POST signed with the secret the UI showed.
  const msg = await received('webhook.test', from);
  assert.deepEqual([msg.method, msg.path, msg.headers['content-type']], ['POST', '/hooks/fleetca', 'application/json']);
  assert.ok(signedWith(msg, secret), `not signed with the secret shown: ${JSON.stringify(msg.headers)}`);
  const body = JSON.parse(msg.body);
  assert.equal(body.data.webhook_id, hook.id);
  // The log shows its webhook-id and, opened, the payload as sent.
  assert.equal(await row.getByTestId('delivery-event-id').textContent(), msg.headers['webhook-id']);
  await row.getByText('Payload', { exact: true }).click();
  assert.deepEqual(JSON.parse(await row.getByTestId('delivery-payload').textContent()), body);
  await screenshot(page, 'webhooks-test-delivered');

  // The log closes again.
  await toggle.click();
  await log.waitFor({ state: 'detached' });
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
});

test('a certificate issued through the API shows as a delivered certificate.issued event', async () => {
  const from = receiver.received.length;
  await hookRow().getByTestId('webhook-deliveries-toggle').click();
  const log = logOf();
  await deliveryRow('webhook.test', 'delivered').waitFor();

  const key = ok(await server.api('POST', '/api/v4/manage/users/', { username: 'svc-hooks', is_service_account: true, enterprise: 'acme' }));
  const cert = ok(await server.api('POST', '/api/v4/manage/mqtt-certificates/', { name: 'hooked-cert', api_key_id: key.id }));
  await log.getByTestId('deliveries-refresh').click();
  const row = deliveryRow('certificate.issued', 'delivered');
  await row.waitFor({ timeout: DELIVERY_TIMEOUT });
  assert.equal(await row.getByTestId('delivery-last-status').textContent(), '204');

  const msg = await received('certificate.issued', from);
  assert.ok(signedWith(msg, secret));
  const body = JSON.parse(msg.body);
  assert.deepEqual(body.data.target, { kind: 'certificate', id: cert.id });
  assert.equal(body.data.enterprise, 'acme');
  assert.equal(await row.getByTestId('delivery-event-id').textContent(), msg.headers['webhook-id']);
  // Newest first, as the API lists them.
  const api = await deliveries();
  assert.deepEqual(
    await log.getByTestId('delivery-row').evaluateAll((rows) => rows.map((r) => [Number(r.dataset.id), r.dataset.eventType])),
    api.results.map((d) => [d.id, d.event_type]),
  );
  assert.deepEqual(api.results.map((d) => d.event_type), ['certificate.issued', 'webhook.test']);

  // The status filter.
  await log.getByTestId('deliveries-status').selectOption('failed');
  await log.getByText('No deliveries match.').waitFor();
  await log.getByTestId('deliveries-status').selectOption('delivered');
  await page.waitForFunction(
    (id) => document.querySelectorAll(`[data-testid="webhook-deliveries"][data-id="${id}"] [data-testid="delivery-row"][data-status="delivered"]`).length === 2,
    hook.id,
  );
  await log.getByTestId('deliveries-status').selectOption('');
  await screenshot(page, 'webhooks-deliveries');
});

test('rotating the signing secret shows the new one once; deliveries are signed with it', async () => {
  await hookRow().getByTestId('webhook-rotate').click();
  const dialog = page.getByTestId('confirm-dialog');
  await dialog.waitFor();
  assert.match(await dialog.textContent(), /Rotate the signing secret\?.*hooks\/fleetca.*at once/);
  await dialog.getByTestId('dialog-confirm').click();
  await page.getByText('Webhook has a new signing secret').waitFor();
  const rotated = await page.getByTestId('webhook-secret').inputValue();
  assert.match(rotated, /^whsec_/);
  assert.notEqual(rotated, secret);

  const from = receiver.received.length;
  await hookRow().getByTestId('webhook-test').click();
  const msg = await received('webhook.test', from);
  assert.ok(signedWith(msg, rotated), 'signed with the new secret');
  assert.ok(!signedWith(msg, secret), 'not with the old one');
  secret = rotated;
  // The log (left open) shows both test events delivered.
  await page.waitForFunction(
    (id) => document.querySelectorAll(`[data-testid="webhook-deliveries"][data-id="${id}"] [data-testid="delivery-row"][data-event-type="webhook.test"][data-status="delivered"]`).length === 2,
    hook.id,
    { timeout: DELIVERY_TIMEOUT },
  );
});

test('a refused delivery is retried; paused, it waits; resumed and still refused, it is given up; redelivered, it goes out', async () => {
  receiver.status = 500;
  await hookRow().getByTestId('webhook-test').click();
  // Retried: still pending, with the receiver's answer.
  const log = logOf();
  const pending = deliveryRow('webhook.test', 'pending').filter({ has: page.getByTestId('delivery-last-error') });
  await pending.waitFor({ timeout: DELIVERY_TIMEOUT });
  assert.equal(await pending.getByTestId('delivery-last-status').textContent(), '500');
  assert.match(await pending.getByTestId('delivery-last-error').textContent(), /the receiver answered 500/);
  assert.match(await pending.getByTestId('delivery-status').textContent(), /^pendingnext try \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  const id = await pending.getAttribute('data-id');

  // Paused: shown so; its deliveries wait (no attempts) instead of being given up.
  await hookRow().getByTestId('webhook-toggle').click();
  await page.getByText(`${receiver.url} is paused: it gets no new events.`).waitFor();
  await page.locator(`[data-testid="webhook-row"][data-id="${hook.id}"][data-active="false"]`).waitFor();
  assert.equal(await hookRow().getByTestId('webhook-row-status').textContent(), 'paused');
  assert.equal(await hookRow().getByTestId('webhook-toggle').textContent(), 'Resume');
  assert.equal(ok(await server.api('GET', `${HOOKS}${hook.id}/`), 200).is_active, false);
  const row = async () => (await deliveries()).results.find((d) => String(d.id) === id);
  const paused = await row();
  await new Promise((r) => setTimeout(r, 7000));
  const later = await row();
  assert.equal(later.status, 'pending', 'a paused endpoint keeps its deliveries');
  assert.equal(later.attempts, paused.attempts, 'and makes no attempts while paused');
  await screenshot(page, 'webhooks-paused');

  // A paused endpoint gets no new events.
  const before = (await deliveries()).count;
  const key = ok(await server.api('POST', '/api/v4/manage/users/', { username: 'svc-paused', is_service_account: true, enterprise: 'acme' }));
  ok(await server.api('POST', '/api/v4/manage/mqtt-certificates/', { name: 'unannounced', api_key_id: key.id }));
  assert.equal((await deliveries()).count, before);

  // Resumed while the receiver still refuses: past its retry period, the delivery is given up.
  await hookRow().getByTestId('webhook-toggle').click();
  await page.getByText(`${receiver.url} is active again.`).waitFor();
  await page.locator(`[data-testid="webhook-row"][data-id="${hook.id}"][data-active="true"]`).waitFor();
  const failed = log.locator(`[data-testid="delivery-row"][data-id="${id}"][data-status="failed"]`);
  await failed.waitFor({ timeout: DELIVERY_TIMEOUT });
  assert.match(await failed.getByTestId('delivery-last-error').textContent(), /the receiver answered 500/);
  const attempts = Number(await failed.getByTestId('delivery-attempts').textContent());
  assert.ok(attempts >= 2, `attempts ${attempts}`);

  // Redelivered on request, it goes out.
  receiver.status = 204;
  const from = receiver.received.length;
  await failed.getByTestId('delivery-redeliver').click();
  await log.getByTestId('delivery-requeued').waitFor();
  const redelivered = log.locator(`[data-testid="delivery-row"][data-id="${id}"][data-status="delivered"]`);
  await redelivered.waitFor({ timeout: DELIVERY_TIMEOUT });
  assert.equal(await redelivered.getByTestId('delivery-attempts').textContent(), String(attempts + 1));
  assert.equal(await redelivered.getByTestId('delivery-last-status').textContent(), '204');
  // The same event (its webhook-id), so the receiver can drop a duplicate.
  const msg = await received('webhook.test', from);
  assert.equal(msg.headers['webhook-id'], await redelivered.getByTestId('delivery-event-id').textContent());
  assert.ok(signedWith(msg, secret));
  assert.deepEqual((await deliveries('&status=failed')).results, []);
});

test('deleting a webhook asks first, then removes it with its delivery log', async () => {
  await hookRow().getByTestId('webhook-delete').click();
  const dialog = page.getByTestId('confirm-dialog');
  await dialog.waitFor();
  assert.match(await dialog.textContent(), /Delete this webhook\?.*hooks\/fleetca.*cannot be undone/);
  // Cancelled: nothing happens.
  await dialog.getByTestId('dialog-cancel').click();
  await dialog.waitFor({ state: 'detached' });
  ok(await server.api('GET', `${HOOKS}${hook.id}/`), 200);

  await hookRow().getByTestId('webhook-delete').click();
  await page.getByTestId('confirm-dialog').getByTestId('dialog-confirm').click();
  await page.getByText(`The webhook for ${receiver.url} was deleted.`).waitFor();
  await page.getByText('No webhooks yet.').waitFor();
  assert.equal(await logOf().count(), 0);
  assert.equal((await server.api('GET', `${HOOKS}${hook.id}/`)).status, 404);
  assert.equal(ok(await server.api('GET', HOOKS), 200).count, 0);
});

test('a manager sees and makes only its enterprise’s webhooks', async () => {
  const globex = ok(await server.api('POST', HOOKS, { url: `${receiver.url}/globex`, events: ['device.deleted'], enterprise: 'globex' }));
  const acme = ok(await server.api('POST', HOOKS, { url: `${receiver.url}/acme`, events: ['certificate.revoked', 'device.disabled'], enterprise: 'acme' }));

  const mgr = await newPage(browser, server);
  await signIn(mgr, 'acme-manager', MANAGER_PASSWORD);
  await mgr.getByTestId('page-overview').waitFor();
  await mgr.getByTestId('nav-webhooks').click();
  await mgr.locator('[data-testid="page-webhooks"][aria-busy="false"]').waitFor();
  await hookRow(acme.id, mgr).waitFor();
  assert.deepEqual(await mgr.getByTestId('webhook-row').evaluateAll((rows) => rows.map((r) => r.dataset.id)), [acme.id]);
  assert.equal(await hookRow(acme.id, mgr).getByTestId('webhook-row-enterprise').textContent(), 'acme');
  assert.equal(await hookRow(acme.id, mgr).getByTestId('webhook-row-events').textContent(), 'certificate.revokeddevice.disabled');
  // No enterprise to choose, and none of fleetca's own events.
  assert.equal(await mgr.getByTestId('webhook-enterprise').count(), 0);
  assert.deepEqual(await mgr.locator('input[name="events"]').evaluateAll((boxes) => boxes.map((b) => b.value)), EVENTS.slice(0, -3));

  // Its new endpoint is its enterprise's.
  await mgr.getByTestId('webhook-url').fill(`${receiver.url}/mine`);
  await mgr.getByLabel('device.disabled', { exact: true }).check();
  await mgr.getByTestId('webhook-create').click();
  await mgr.getByTestId('webhook-secret-panel').waitFor();
  assert.match(await mgr.getByTestId('webhook-secret').inputValue(), /^whsec_/);
  const mine = ok(await server.api('GET', HOOKS), 200).results.find((w) => w.url === `${receiver.url}/mine`);
  assert.deepEqual([mine.enterprise, mine.events, mine.created_by], ['acme', ['device.disabled'], 'acme-manager']);
  await hookRow(mine.id, mgr).waitFor();
  assert.equal(await hookRow(mine.id, mgr).getByTestId('webhook-row-enterprise').textContent(), 'acme');
  assert.doesNotMatch(await mgr.locator('main').textContent(), /globex/);
  // Nor does asking for globex's through the API with the manager's session.
  const status = await mgr.evaluate(async (path) => (await fetch(path)).status, `${HOOKS}${globex.id}/`);
  assert.equal(status, 404);
  await screenshot(mgr, 'manager-webhooks');
  assert.deepEqual(mgr.problems, []);
  await mgr.context().close();
});

test('a server without webhook_allow_private refuses an internal URL under the URL field', async () => {
  const strict = await startServer('webhooks-strict');
  try {
    const p = await newPage(browser, strict);
    await signIn(p, 'admin', ADMIN_PASSWORD);
    await p.getByTestId('page-overview').waitFor();
    await p.getByTestId('nav-webhooks').click();
    await p.locator('[data-testid="page-webhooks"][aria-busy="false"]').waitFor();
    await p.getByTestId('webhook-url').fill('http://10.0.0.1/x');
    await p.getByLabel('certificate.issued', { exact: true }).check();
    await p.getByTestId('webhook-create').click();
    assert.match(await p.getByTestId('field-errors').textContent(), /^URL: .*internal address/);
    assert.equal(await p.getByTestId('webhook-secret-panel').count(), 0);
    assert.equal(ok(await strict.api('GET', HOOKS), 200).count, 0);
    await screenshot(p, 'webhooks-internal-url');
    assert.deepEqual(p.problems, []);
    await p.context().close();
  } finally {
    await strict.stop();
  }
});

test('the webhooks page and a delivery log fit a phone', async () => {
  const acme = ok(await server.api('GET', HOOKS), 200).results.find((w) => w.url === `${receiver.url}/acme`);
  const phone = await newPage(browser, server, { viewport: PHONE });
  await signIn(phone, 'admin', ADMIN_PASSWORD);
  await phone.getByTestId('page-overview').waitFor();
  await phone.getByRole('button', { name: 'Menu' }).click();
  await phone.getByTestId('nav-webhooks').click();
  await phone.locator('[data-testid="page-webhooks"][aria-busy="false"]').waitFor();
  await hookRow(acme.id, phone).getByTestId('webhook-test').click();
  await deliveryRow('webhook.test', 'delivered', acme.id, phone).waitFor({ timeout: DELIVERY_TIMEOUT });
  await screenshot(phone, 'phone-webhooks');
  assert.ok((await noOverflow(phone)) <= 0, 'webhooks overflows');
  assert.deepEqual(phone.problems, []);
  await phone.context().close();
});

test('no script errors or CSP violations happened', () => {
  assert.deepEqual(page.problems, []);
});
