// The Audit page: changes made through the API are listed with their actor, a row opens to
// its details, request id and hash, the filters narrow the list and the JSON Lines export,
// a failed sign-in shows as a failure, a manager of another enterprise sees none of acme's
// records, and the page fits a phone.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startServer, launchBrowser, newPage, signIn, screenshot, download, tempDir, ADMIN_PASSWORD, PHONE } from './harness.js';

const AUDIT = '/api/v4/manage/audit/';
const TENANT = 'acme';
const MANAGER_PASSWORD = 'globex manager passphrase';
const ACTIONS = [
  'user.create', 'user.update', 'user.activate', 'user.deactivate', 'user.rotate_token', 'user.set_password',
  'certificate.create', 'certificate.enroll', 'certificate.renew', 'certificate.revoke',
  'claim.create', 'claim.revoke',
  'device.create', 'device.update', 'device.enable', 'device.disable', 'device.rotate', 'device.delete',
  'product.create', 'product.update', 'product.rotate_secret', 'product.delete',
  'product_device.create', 'product_device.update', 'product_device.enable', 'product_device.disable',
  'product_device.rotate_secret', 'product_device.reset_activation', 'product_device.activate', 'product_device.delete',
  'webhook.create', 'webhook.update', 'webhook.rotate_secret', 'webhook.delete', 'webhook.test', 'webhook.redeliver',
  'auth.sign_in_failed', 'auth.token_failed', 'est.auth_failed', 'auth.failures_suppressed',
  'crl.repair', 'crl.repair_acknowledge',
];

let server;
let browser;
let page;
let apiKey;
let cert;
let manager;
const files = tempDir();

const ok = (res, status = 201) => {
  assert.equal(res.status, status, JSON.stringify(res.body));
  return res.body;
};
/** A datetime-local value ("2026-12-02T10:15"), in UTC as the page reads it. */
const minuteInput = (ms) => new Date(ms).toISOString().slice(0, 16);
/** RFC 3339 without milliseconds, as the page sends it. */
const rfc3339 = (ms) => new Date(ms).toISOString().replace('.000Z', 'Z');

before(async () => {
  server = await startServer('audit');
  browser = await launchBrowser();
  page = await newPage(browser, server);
  // As the admin (its Bearer token): an acme API key, a certificate for it, revoked.
  apiKey = ok(await server.api('POST', '/api/v4/manage/users/', { username: 'svc-audit', is_service_account: true, enterprise: TENANT }));
  cert = ok(await server.api('POST', '/api/v4/manage/mqtt-certificates/', { name: 'audit-cert', api_key_id: apiKey.id }));
  ok(await server.api('POST', `/api/v4/manage/mqtt-certificates/${cert.id}/revoke/`, { reason: 'keyCompromise' }), 200);
  // A manager of another enterprise.
  manager = ok(await server.api('POST', '/api/v4/manage/users/', { username: 'globex-manager', is_service_account: false, enterprise: 'globex', role: 'manager', password: MANAGER_PASSWORD }));
  await signIn(page, 'admin', ADMIN_PASSWORD);
  await page.getByTestId('page-overview').waitFor();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Opens a page afresh and waits until it has loaded. */
async function open(name, p = page) {
  await p.goto(`/#/${name}`);
  await p.reload();
  await p.locator(`[data-testid="page-${name}"][aria-busy="false"]`).waitFor();
}

/** The listed records as their rows' data attributes, top to bottom. */
const listed = (p = page) => p.getByTestId('audit-row').evaluateAll((rows) => rows.map((r) => ({ ...r.dataset })));
/** Waits until the list shows exactly these actions, top to bottom. */
const listedActions = (actions, p = page) =>
  p.waitForFunction(
    (want) => [...document.querySelectorAll('[data-testid="audit-row"]')].map((r) => r.dataset.action).join('|') === want,
    actions.join('|'),
  );
const row = (action, targetId) => page.locator(`[data-testid="audit-row"][data-action="${action}"][data-target-id="${targetId}"]`);
const noOverflow = (p) => p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);

test('changes made through the API are listed with their actor, newest first', async () => {
  await open('audit');
  assert.equal(await page.getByTestId('nav-audit').getAttribute('aria-current'), 'page');
  // The nav entry comes last, before Account.
  const nav = await page.locator('#nav a').evaluateAll((links) => links.map((a) => a.dataset.testid));
  assert.equal(nav.indexOf('nav-audit'), nav.indexOf('nav-account') - 1);
  assert.equal(nav.indexOf('nav-audit'), nav.indexOf('nav-ca') + 1);

  const rows = await listed();
  const find = (action, targetId) => rows.find((r) => r.action === action && r.targetId === targetId);
  for (const [action, targetId] of [['user.create', apiKey.id], ['certificate.create', cert.id], ['certificate.revoke', cert.id]]) {
    const r = find(action, targetId);
    assert.ok(r, `no ${action} row for ${targetId}: ${JSON.stringify(rows)}`);
    assert.deepEqual([r.actor, r.role, r.enterprise, r.outcome], ['admin', 'admin', TENANT, 'success'], action);
  }
  // Newest first, as the API lists them.
  const api = ok(await server.api('GET', `${AUDIT}?page_size=25`), 200);
  assert.deepEqual(rows.map((r) => Number(r.seq)), api.results.map((r) => r.seq));
  assert.ok(rows.indexOf(find('certificate.revoke', cert.id)) < rows.indexOf(find('certificate.create', cert.id)));

  // What the revocation's row shows.
  const revoke = row('certificate.revoke', cert.id);
  const rec = api.results.find((r) => r.action === 'certificate.revoke');
  assert.equal(
    await revoke.locator('time').textContent(),
    `${new Date(rec.at).toISOString().slice(0, 19).replace('T', ' ')} UTC`,
  );
  assert.equal(await revoke.getByTestId('audit-actor-cell').textContent(), 'adminadmin');
  assert.match(await revoke.textContent(), new RegExp(`certificate\\.revoke.*certificate${cert.id}.*${TENANT}`));
  assert.equal(await revoke.getByTestId('audit-outcome').textContent(), 'success');
  assert.equal(await revoke.getByTestId('audit-client-addr').textContent(), rec.client_addr || '—');
  assert.equal(await page.getByTestId('page-info').textContent(), `1–${api.count} of ${api.count} records · page 1 of 1`);
  await screenshot(page, 'audit');
});

test('filtering by action shows the one revocation; its row opens to the reason, request id and hash', async () => {
  await open('audit');
  // "Any action", then every action fleetca records.
  const options = await page.getByTestId('audit-action').locator('option').evaluateAll((o) => o.map((e) => [e.value, e.textContent]));
  assert.deepEqual(options, [['', 'Any action'], ...ACTIONS.map((a) => [a, a])]);
  const kinds = await page.getByTestId('audit-target-kind').locator('option').evaluateAll((o) => o.map((e) => e.value));
  assert.deepEqual(kinds, ['', 'user', 'certificate', 'claim', 'device', 'product', 'product_device', 'webhook', 'session', 'crl', 'repair']);
  await page.getByTestId('audit-action').selectOption('certificate.revoke');
  await listedActions(['certificate.revoke']);
  assert.equal(await page.getByTestId('audit-row').count(), 1);
  const rec = ok(await server.api('GET', `${AUDIT}?action=certificate.revoke`), 200).results[0];

  const r = row('certificate.revoke', cert.id);
  const toggle = r.getByTestId('audit-toggle');
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
  await toggle.click();
  const panel = page.locator(`[data-testid="audit-details"][data-seq="${rec.seq}"]`);
  await panel.waitFor();
  assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
  assert.equal(await toggle.getAttribute('aria-controls'), await panel.getAttribute('id'));
  assert.equal(await panel.getByRole('heading', { name: `Record ${rec.seq}: certificate.revoke` }).count(), 1);
  const details = JSON.parse(await panel.getByTestId('audit-details-json').textContent());
  assert.equal(details.reason, 'keyCompromise');
  assert.equal(details.serial, cert.serial);
  assert.equal(await panel.getByTestId('audit-request-id').textContent(), rec.request_id || '—');
  // The hash shortened, the whole of it in the title; so the previous one.
  const hash = panel.getByTestId('audit-hash');
  assert.equal(await hash.getAttribute('title'), rec.hash);
  assert.equal(await hash.textContent(), `${rec.hash.slice(0, 12)}…`);
  assert.match(rec.hash, /^[0-9a-f]{64}$/);
  assert.equal(await panel.getByTestId('audit-prev-hash').getAttribute('title'), rec.prev_hash);
  await screenshot(page, 'audit-details');

  // It closes again.
  await toggle.click();
  await panel.waitFor({ state: 'detached' });
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
});

test('the export link carries the filters and downloads the matching records as JSON Lines', async () => {
  await open('audit');
  const exportLink = page.getByTestId('audit-export');
  assert.equal(await exportLink.textContent(), 'Export (JSON Lines)');
  // Unfiltered to begin with.
  const plain = new URL(await exportLink.getAttribute('href'), server.url);
  assert.equal(plain.pathname, AUDIT);
  assert.deepEqual([...plain.searchParams], [['format', 'jsonl']]);

  const hourAgo = Date.now() - 3_600_000;
  const inAnHour = Date.now() + 3_600_000;
  await page.getByTestId('audit-action').selectOption('certificate.revoke');
  await page.getByTestId('audit-actor').fill('admin');
  await page.getByTestId('audit-target-kind').selectOption('certificate');
  await page.getByTestId('audit-target-id').fill(cert.id);
  await page.getByTestId('audit-enterprise').fill(TENANT);
  await page.getByTestId('audit-since').fill(minuteInput(hourAgo));
  await page.getByTestId('audit-until').fill(minuteInput(inAnHour));
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForFunction(() => new URL(document.querySelector('[data-testid="audit-export"]').href).searchParams.has('since'));
  await listedActions(['certificate.revoke']);

  const url = new URL(await exportLink.getAttribute('href'), server.url);
  assert.equal(url.pathname, AUDIT);
  const params = Object.fromEntries(url.searchParams);
  assert.deepEqual(params, {
    format: 'jsonl',
    actor: 'admin',
    action: 'certificate.revoke',
    target_kind: 'certificate',
    target_id: cert.id,
    enterprise: TENANT,
    // since and until in RFC 3339 UTC; until to the end of its minute.
    since: rfc3339(Date.parse(`${minuteInput(hourAgo)}Z`)),
    until: rfc3339(Date.parse(`${minuteInput(inAnHour)}Z`) + 60_000),
  });

  // The download (the session cookie authenticates it): the one record, as the API has it.
  const path = await download(page, exportLink, files);
  assert.match(path, /\.jsonl$/);
  const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 1);
  assert.deepEqual([lines[0].action, lines[0].target_id, lines[0].actor, lines[0].details.reason], ['certificate.revoke', cert.id, 'admin', 'keyCompromise']);

  // Since an hour ahead: nothing matches, and the export follows.
  await page.getByTestId('audit-since').fill(minuteInput(inAnHour));
  await page.getByTestId('audit-until').fill('');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.getByText('No audit records match.').waitFor();
  const later = new URL(await exportLink.getAttribute('href'), server.url).searchParams;
  assert.equal(later.get('since'), rfc3339(Date.parse(`${minuteInput(inAnHour)}Z`)));
  assert.equal(later.has('until'), false);
  await screenshot(page, 'audit-empty');
});

test('a failed sign-in shows as a failure of the name it claimed', async () => {
  const res = await fetch(`${server.url}/api/v4/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: 'not the password' }),
  });
  assert.equal(res.status, 401);
  const rec = ok(await server.api('GET', `${AUDIT}?action=auth.sign_in_failed`), 200).results[0];
  assert.ok(rec, 'the API lists the failed sign-in');

  await open('audit');
  await page.getByTestId('audit-action').selectOption('auth.sign_in_failed');
  await listedActions(['auth.sign_in_failed']);
  const [r] = await listed();
  assert.deepEqual([r.actor, r.role, r.targetKind, r.outcome, r.enterprise], ['admin', 'anonymous', 'session', 'failure', '']);
  const outcome = page.getByTestId('audit-row').getByTestId('audit-outcome').locator('.badge');
  assert.equal(await outcome.textContent(), 'failure');
  // In the error colour.
  const [colour, danger] = await outcome.evaluate((el) => {
    const probe = document.createElement('span');
    probe.className = 'error-text';
    document.body.append(probe);
    const want = getComputedStyle(probe).color;
    probe.remove();
    return [getComputedStyle(el).color, want];
  });
  assert.equal(colour, danger);
  assert.equal(await page.getByTestId('audit-row').getByTestId('audit-client-addr').textContent(), rec.client_addr || '—');
  await page.getByTestId('audit-toggle').click();
  assert.equal(await page.getByTestId('audit-details').getByTestId('audit-details-json').textContent(), 'No details.');
  await screenshot(page, 'audit-sign-in-failed');
});

test('a manager of another enterprise sees only its records, none of acme', async () => {
  const mgr = await newPage(browser, server);
  await signIn(mgr, 'globex-manager', MANAGER_PASSWORD);
  await mgr.getByTestId('page-overview').waitFor();
  await mgr.getByTestId('nav-audit').click();
  await mgr.locator('[data-testid="page-audit"][aria-busy="false"]').waitFor();
  await mgr.getByTestId('audit-row').first().waitFor();

  const rows = await listed(mgr);
  assert.ok(rows.every((r) => r.enterprise === 'globex'), JSON.stringify(rows));
  // Its own creation is there; nothing of acme, nor the (enterprise-less) failed sign-in.
  assert.ok(rows.some((r) => r.action === 'user.create' && r.targetId === manager.id), JSON.stringify(rows));
  assert.ok(!rows.some((r) => [apiKey.id, cert.id].includes(r.targetId)));
  assert.ok(!rows.some((r) => r.action === 'auth.sign_in_failed'));
  assert.equal(await mgr.getByTestId('audit-enterprise').count(), 0);
  assert.doesNotMatch(await mgr.locator('main').textContent(), /acme|svc-audit|audit-cert/);
  // Nor does asking for acme through the API with the manager's session.
  const acme = await mgr.evaluate(async (path) => (await (await fetch(`${path}?enterprise=acme`)).json()).count, AUDIT);
  assert.equal(acme, 0);
  await mgr.getByTestId('audit-action').selectOption('certificate.revoke');
  await mgr.getByText('No audit records match.').waitFor();
  await screenshot(mgr, 'manager-audit');

  // The export holds only globex too.
  await mgr.getByTestId('audit-action').selectOption('');
  await listedActions(rows.map((r) => r.action), mgr);
  const path = await download(mgr, mgr.getByTestId('audit-export'), files);
  const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.seq), rows.map((r) => Number(r.seq)).reverse());
  assert.ok(lines.every((l) => l.enterprise === 'globex'));
  assert.deepEqual(mgr.problems, []);
  await mgr.context().close();
});

test('the audit page and a record’s details fit a phone', async () => {
  const phone = await newPage(browser, server, { viewport: PHONE });
  await signIn(phone, 'admin', ADMIN_PASSWORD);
  await phone.getByTestId('page-overview').waitFor();
  await phone.getByRole('button', { name: 'Menu' }).click();
  await phone.getByTestId('nav-audit').click();
  await phone.locator('[data-testid="page-audit"][aria-busy="false"]').waitFor();
  const revoke = phone.locator(`[data-testid="audit-row"][data-action="certificate.revoke"][data-target-id="${cert.id}"]`);
  await revoke.getByTestId('audit-toggle').click();
  await phone.getByTestId('audit-details').getByText('keyCompromise').waitFor();
  await screenshot(phone, 'phone-audit');
  assert.ok((await noOverflow(phone)) <= 0, 'audit overflows');
  assert.deepEqual(phone.problems, []);
  await phone.context().close();
});

test('no script errors or CSP violations happened', () => {
  assert.deepEqual(page.problems, []);
});
