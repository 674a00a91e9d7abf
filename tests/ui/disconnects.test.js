// The Live sessions page, against a server whose one broker is a command: a script that
// records its environment (and fails while a marker file exists). A revoked certificate's
// disconnect is listed and confirmed by the broker, the script having been told which
// certificate; a disconnect the broker refuses stands out as pending with the broker's error
// and its next attempt, and the page reads itself again until the broker confirms; the
// status filter and counts; a manager sees its enterprise's disconnects only; the page fits
// a phone; a server whose broker keeps failing and retries for no time shows a failed row;
// a server without brokers says that none is configured and queues nothing.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, readdirSync, chmodSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, launchBrowser, newPage, signIn, screenshot, tempDir, ADMIN_PASSWORD, PHONE } from './harness.js';

const USERS = '/api/v4/manage/users/';
const CERTS = '/api/v4/manage/mqtt-certificates/';
const DISCONNECTS = '/api/v4/manage/disconnects/';
const MANAGER_PASSWORD = 'acme manager passphrase';
/** How long a disconnect may take to show as done (backoff included; the page reads itself every 2 s). */
const DONE_TIMEOUT = 25_000;

const dir = tempDir();
const script = join(dir, 'kick.sh');
const failMarker = join(dir, 'fail');

let server;
let browser;
let page;
let apiKey;
let cert;

const ok = (res, status = 201) => {
  assert.equal(res.status, status, JSON.stringify(res.body));
  return res.body;
};

/** The broker's calls so far: each call's FLEETCA_* environment, oldest first. */
const calls = () =>
  readdirSync(dir)
    .filter((f) => f.startsWith('call-'))
    .sort()
    .map((f) => Object.fromEntries(readFileSync(join(dir, f), 'utf8').trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])));

/** A [[brokers]] entry that runs `argv`. */
const commandBroker = (name, argv) => `[[brokers]]\nkind = "command"\nname = ${JSON.stringify(name)}\ncommand = ${JSON.stringify(argv)}\n`;

before(async () => {
  writeFileSync(
    script,
    [
      '#!/bin/sh',
      `DIR='${dir}'`,
      'if [ -e "$DIR/fail" ]; then echo "broker unreachable (test)" >&2; exit 1; fi',
      'env | grep \'^FLEETCA_\' > "$DIR/call-$(date +%s%N)"',
      '',
    ].join('\n'),
  );
  chmodSync(script, 0o755);
  // And a broker watched only by the revocation canary, at an address where nothing listens.
  const watched = '[[brokers]]\nkind = "mqtt"\nname = "mosquitto-lab"\nmqtt_url = "mqtts://127.0.0.1:1"\n';
  server = await startServer('disconnects', { settingsToml: commandBroker('kick', [script]) + watched });
  browser = await launchBrowser();
  page = await newPage(browser, server);
  ok(await server.api('POST', USERS, { username: 'acme-manager', is_service_account: false, enterprise: 'acme', role: 'manager', password: MANAGER_PASSWORD }));
  // As the admin (its Bearer token): an acme API key, a certificate for it, revoked.
  apiKey = ok(await server.api('POST', USERS, { username: 'svc-ui-kick', is_service_account: true, enterprise: 'acme' }));
  cert = ok(await server.api('POST', CERTS, { name: 'ui', api_key_id: apiKey.id }));
  ok(await server.api('POST', `${CERTS}${cert.id}/revoke/`, { reason: 'keyCompromise' }), 200);
  await signIn(page, 'admin', ADMIN_PASSWORD);
  await page.getByTestId('page-overview').waitFor();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Opens a page afresh and waits until it has loaded. */
async function open(name, p = page) {
  await p.goto(`/#/${name}`);
  await p.reload();
  await p.locator(`[data-testid="page-${name}"][aria-busy="false"]`).waitFor();
}

const row = (action, targetId, p = page) => p.locator(`[data-testid="disconnect-row"][data-action="${action}"][data-target-id="${targetId}"]`);
const listed = (p = page) => p.getByTestId('disconnect-row').evaluateAll((rows) => rows.map((r) => ({ ...r.dataset })));
const noOverflow = (p) => p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);

test('the overview says a broker the revocation canary cannot reach is not proven to refuse revoked certificates', async () => {
  await open('overview');
  const line = page.getByTestId('canary-mosquitto-lab');
  // The first check runs at start; reload until it has a result.
  for (let i = 0; i < 20 && !/checked/.test(await line.textContent()); i += 1) {
    await page.waitForTimeout(500);
    await open('overview');
  }
  const text = await line.textContent();
  assert.match(text, /^mosquitto-lab not proven checked /);
  assert.match(text, /the valid canary certificate got no answer: .*Connection refused/);
  // The command broker has no mqtt_url: the canary does not watch it.
  assert.equal(await page.getByTestId('canary-kick').count(), 0);
});

test('a revoked certificate’s live sessions are ended by the configured broker', async () => {
  await page.getByTestId('nav-sessions').click();
  await page.locator('[data-testid="page-sessions"][aria-busy="false"]').waitFor();
  assert.equal(await page.getByTestId('nav-sessions').getAttribute('aria-current'), 'page');
  assert.equal(await page.title(), 'Live sessions · fleetca');
  // The nav entry sits after Webhooks, before the certificate authority.
  const nav = await page.locator('#nav a').evaluateAll((links) => links.map((a) => a.dataset.testid));
  assert.equal(nav.indexOf('nav-sessions'), nav.indexOf('nav-webhooks') + 1);
  assert.equal(nav.indexOf('nav-ca'), nav.indexOf('nav-sessions') + 1);
  assert.equal(await page.getByTestId('nav-sessions').textContent(), 'Live sessions');

  // The configured broker, and no "none configured" note.
  assert.deepEqual(await page.getByTestId('broker').evaluateAll((items) => items.map((li) => li.textContent)), ['kick']);
  assert.equal(await page.getByTestId('no-brokers').count(), 0);

  // The certificate's disconnect, confirmed by kick (at once, or once the page reads again).
  const revoked = row('certificate.revoke', cert.id);
  await revoked.and(page.locator('[data-status="done"]')).waitFor({ timeout: DONE_TIMEOUT });
  assert.equal(await revoked.getByTestId('disconnect-status').textContent(), 'done');
  assert.deepEqual(await revoked.getByTestId('confirmed-broker').allTextContents(), ['kick']);
  assert.equal(await revoked.getAttribute('data-target-kind'), 'certificate');
  assert.equal(await revoked.getAttribute('data-enterprise'), 'acme');
  assert.equal(await revoked.getAttribute('class'), null);
  assert.match(await revoked.textContent(), /certificate revoked/);
  assert.equal(await revoked.getByTestId('disconnect-attempts').textContent(), '1');
  assert.equal(await revoked.getByTestId('disconnect-next').textContent(), '—');
  assert.equal(await revoked.getByTestId('disconnect-last-error').count(), 0);
  assert.equal(await page.getByTestId('count-done').textContent(), '1');
  assert.equal(await page.getByTestId('count-pending').textContent(), '0');
  assert.equal(await page.getByTestId('count-failed').textContent(), '0');

  // The API says the same.
  const listing = ok(await server.api('GET', DISCONNECTS), 200);
  assert.deepEqual(listing.brokers, ['kick']);
  assert.deepEqual(
    listing.results.map((d) => [d.action, d.target_id, d.status, d.done_brokers]),
    [['certificate.revoke', cert.id, 'done', ['kick']]],
  );

  // The script was run once, told which certificate's sessions to end.
  const made = calls();
  assert.equal(made.length, 1, JSON.stringify(made));
  assert.equal(made[0].FLEETCA_REASON, 'certificate.revoke');
  assert.equal(made[0].FLEETCA_TARGET_KIND, 'certificate');
  assert.equal(made[0].FLEETCA_TARGET_ID, cert.id);
  assert.equal(made[0].FLEETCA_SCOPE, 'certificate');
  assert.ok(made[0].FLEETCA_SERIAL, JSON.stringify(made[0]));
  await screenshot(page, 'sessions');
});

test('a disconnect the broker refuses stands out as pending and is read again until the broker confirms', async () => {
  writeFileSync(failMarker, '');
  // The new token replaces the old one (and is what the key uses from now on).
  apiKey.token = ok(await server.api('POST', `${USERS}${apiKey.id}/rotate-token/`), 200).token;
  assert.ok(apiKey.token);
  await page.getByTestId('disconnects-refresh').click();
  const rotated = row('user.rotate_token', apiKey.id);
  await rotated.waitFor();
  assert.equal(await rotated.getAttribute('data-status'), 'pending');
  // Once the broker answered (the page reads itself again while one is pending): its error.
  const lastError = rotated.getByTestId('disconnect-last-error');
  await lastError.waitFor({ timeout: DONE_TIMEOUT });
  assert.match(await lastError.textContent(), /^kick: the disconnect command exited with .*broker unreachable \(test\)/);
  assert.equal(await rotated.getAttribute('class'), 'row-pending');
  assert.equal(await rotated.getByTestId('disconnect-status').textContent(), 'pending');
  assert.equal(await rotated.getByTestId('waiting-brokers').textContent(), 'waiting for: kick');
  assert.match(await rotated.getByTestId('disconnect-next').textContent(), /^(due now|in \d+ s)\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  assert.match(await rotated.textContent(), /API key token rotated/);
  assert.equal(await page.getByTestId('count-pending').textContent(), '1');
  assert.match(await page.getByTestId('disconnects-updated').textContent(), /read again every 2 s/);
  // Pending rows are tinted, and the pending count too.
  const [rowBg, cardBg] = await page.evaluate(() => [
    getComputedStyle(document.querySelector('tr.row-pending > td')).backgroundColor,
    getComputedStyle(document.querySelector('[data-status="pending"].stat')).backgroundColor,
  ]);
  assert.notEqual(rowBg, 'rgba(0, 0, 0, 0)');
  assert.equal(cardBg, rowBg);
  await screenshot(page, 'sessions-pending');

  // The broker comes back: the row turns done without a click, the error gone.
  rmSync(failMarker);
  await rotated.and(page.locator('[data-status="done"]')).waitFor({ timeout: DONE_TIMEOUT });
  assert.deepEqual(await rotated.getByTestId('confirmed-broker').allTextContents(), ['kick']);
  assert.equal(await rotated.getByTestId('disconnect-last-error').count(), 0);
  assert.ok(Number(await rotated.getAttribute('data-attempts')) >= 2);
  assert.equal(await page.getByTestId('count-pending').textContent(), '0');
  assert.doesNotMatch(await page.getByTestId('disconnects-updated').textContent(), /read again/);
  const last = calls().at(-1);
  assert.deepEqual(
    [last.FLEETCA_REASON, last.FLEETCA_TARGET_KIND, last.FLEETCA_TARGET_ID, last.FLEETCA_SCOPE, last.FLEETCA_USERNAME],
    ['user.rotate_token', 'user', apiKey.id, 'password', 'svc-ui-kick'],
  );
});

test('the status filter narrows the list', async () => {
  await open('sessions');
  assert.deepEqual((await listed()).map((r) => r.action), ['user.rotate_token', 'certificate.revoke']);
  await page.getByTestId('disconnects-status').selectOption('failed');
  await page.getByText('No failed disconnects.').waitFor();
  await page.getByTestId('disconnects-status').selectOption('done');
  await page.getByTestId('disconnect-row').nth(1).waitFor();
  assert.deepEqual((await listed()).map((r) => r.status), ['done', 'done']);
  await page.getByTestId('disconnects-status').selectOption('');
});

test('a manager sees its enterprise’s disconnects only', async () => {
  // A globex key deactivated: its disconnect is globex's.
  const globex = ok(await server.api('POST', USERS, { username: 'svc-globex-kick', is_service_account: true, enterprise: 'globex' }));
  ok(await server.api('DELETE', `${USERS}${globex.id}/`), 204);
  const all = ok(await server.api('GET', DISCONNECTS), 200).results;
  assert.ok(all.some((d) => d.action === 'user.deactivate' && d.enterprise === 'globex'), JSON.stringify(all));

  const mgr = await newPage(browser, server);
  await signIn(mgr, 'acme-manager', MANAGER_PASSWORD);
  await mgr.getByTestId('page-overview').waitFor();
  await mgr.getByTestId('nav-sessions').click();
  await mgr.locator('[data-testid="page-sessions"][aria-busy="false"]').waitFor();
  await row('certificate.revoke', cert.id, mgr).waitFor();
  const rows = await listed(mgr);
  assert.deepEqual(rows.map((r) => [r.action, r.enterprise]), [['user.rotate_token', 'acme'], ['certificate.revoke', 'acme']]);
  assert.deepEqual(await mgr.getByTestId('broker').allTextContents(), ['kick']);
  assert.equal(await mgr.getByTestId('count-done').textContent(), '2');
  assert.doesNotMatch(await mgr.locator('main').textContent(), /globex/);
  await screenshot(mgr, 'manager-sessions');
  assert.deepEqual(mgr.problems, []);
  await mgr.context().close();
});

test('the live sessions page fits a phone', async () => {
  const phone = await newPage(browser, server, { viewport: PHONE });
  await signIn(phone, 'admin', ADMIN_PASSWORD);
  await phone.getByTestId('page-overview').waitFor();
  await phone.getByRole('button', { name: 'Menu' }).click();
  await phone.getByTestId('nav-sessions').click();
  await phone.locator('[data-testid="page-sessions"][aria-busy="false"]').waitFor();
  await row('certificate.revoke', cert.id, phone).waitFor();
  await screenshot(phone, 'phone-sessions');
  assert.ok((await noOverflow(phone)) <= 0, 'live sessions overflows');
  assert.deepEqual(phone.problems, []);
  await phone.context().close();
});

test('a broker that keeps failing past the retry period leaves a failed row', async () => {
  const failing = await startServer('disconnects-failing', {
    settings: { disconnect_retry_hours: 0 },
    settingsToml: commandBroker('down', ['/bin/sh', '-c', 'echo "connection refused" >&2; exit 3']),
  });
  try {
    const key = ok(await failing.api('POST', USERS, { username: 'svc-ui-down', is_service_account: true, enterprise: 'acme' }));
    const c = ok(await failing.api('POST', CERTS, { name: 'ui-down', api_key_id: key.id }));
    ok(await failing.api('POST', `${CERTS}${c.id}/revoke/`, { reason: 'keyCompromise' }), 200);
    const p = await newPage(browser, failing);
    await signIn(p, 'admin', ADMIN_PASSWORD);
    await p.getByTestId('page-overview').waitFor();
    await p.getByTestId('nav-sessions').click();
    await p.locator('[data-testid="page-sessions"][aria-busy="false"]').waitFor();
    const failed = row('certificate.revoke', c.id, p).and(p.locator('[data-status="failed"]'));
    await failed.waitFor({ timeout: DONE_TIMEOUT });
    assert.equal(await failed.getAttribute('class'), 'row-failed');
    assert.equal(await failed.getByTestId('disconnect-status').textContent(), 'failed');
    assert.match(await failed.getByTestId('disconnect-last-error').textContent(), /^down: the disconnect command exited with .*connection refused/);
    assert.equal(await failed.getByTestId('waiting-brokers').textContent(), 'not confirmed: down');
    assert.equal(await failed.getByTestId('confirmed-broker').count(), 0);
    assert.equal(await failed.getByTestId('disconnect-next').textContent(), '—');
    assert.equal(await p.getByTestId('count-failed').textContent(), '1');
    assert.match(await p.getByTestId('count-failed').locator('xpath=..').getAttribute('class'), /\battention\b/);
    await screenshot(p, 'sessions-failed');
    assert.deepEqual(p.problems, []);
    await p.context().close();
  } finally {
    await failing.stop();
  }
});

test('a server without brokers says that none is configured, and queues nothing', async () => {
  const bare = await startServer('disconnects-none');
  try {
    const key = ok(await bare.api('POST', USERS, { username: 'svc-ui-none', is_service_account: true, enterprise: 'acme' }));
    const c = ok(await bare.api('POST', CERTS, { name: 'ui-none', api_key_id: key.id }));
    ok(await bare.api('POST', `${CERTS}${c.id}/revoke/`, { reason: 'keyCompromise' }), 200);
    const p = await newPage(browser, bare);
    await signIn(p, 'admin', ADMIN_PASSWORD);
    await p.getByTestId('page-overview').waitFor();
    await p.getByTestId('nav-sessions').click();
    await p.locator('[data-testid="page-sessions"][aria-busy="false"]').waitFor();
    const note = p.getByTestId('no-brokers');
    await note.waitFor();
    assert.match(await note.textContent(), /^No broker is configured\..*\[\[brokers\]\].*“Live sessions”/);
    assert.equal(await p.getByTestId('broker').count(), 0);
    await p.getByText('Nothing is queued while no broker is configured.').waitFor();
    // Nothing ever queued: no counts either.
    assert.ok(await p.getByTestId('disconnect-counts').isHidden());
    const listing = ok(await bare.api('GET', DISCONNECTS), 200);
    assert.deepEqual([listing.count, listing.brokers], [0, []]);
    await screenshot(p, 'sessions-no-brokers');
    assert.deepEqual(p.problems, []);
    await p.context().close();
  } finally {
    await bare.stop();
  }
});

test('API keys cannot read the disconnects', async () => {
  const res = await server.api('GET', DISCONNECTS, undefined, apiKey.token);
  assert.equal(res.status, 403, JSON.stringify(res.body));
});

test('no script errors or CSP violations happened', () => {
  assert.deepEqual(page.problems, []);
});
