// The first-time set-up: on a newcomer's first start the admin has only the API token fleetca
// wrote to admin-token, and the sign-in page offers to choose a password with it. Once the
// admin has one, the page is the ordinary sign-in form again.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, launchBrowser, newPage, signIn, screenshot } from './harness.js';

const NEW_PASSWORD = 'a first admin passphrase';

let server;
let browser;
let page;

before(async () => {
  server = await startServer('setup', { firstStart: true });
  browser = await launchBrowser();
  page = await newPage(browser, server);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function fillSetup(token, password, again = password) {
  await page.getByLabel('Admin API token').fill(token);
  await page.getByLabel('New password', { exact: true }).fill(password);
  await page.getByLabel('New password again').fill(again);
  await page.getByRole('button', { name: 'Set the password and sign in' }).click();
}

test('a fresh server offers the first-time set-up and names the token file', async () => {
  await page.goto('/');
  await page.getByTestId('setup-form').waitFor();
  assert.equal(await page.getByTestId('login-form').count(), 0);
  assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'First-time set-up');
  assert.equal((await page.getByTestId('setup-token-file').textContent()).trim(), join(server.dataDir, 'admin-token'));
  assert.equal(await page.getByLabel('Admin API token').getAttribute('type'), 'password');
  assert.equal(await page.getByLabel('Admin API token').getAttribute('autocomplete'), 'off');
  await screenshot(page, 'setup');
});

test('mismatched passwords and a wrong token are refused, and the form stays', async () => {
  await fillSetup(server.token, NEW_PASSWORD, `${NEW_PASSWORD}!`);
  await page.getByTestId('error').filter({ hasText: 'The new passwords do not match.' }).waitFor();
  await fillSetup('fca_0123456789ab_not-the-admin-token', NEW_PASSWORD);
  await page.getByTestId('error').filter({ hasText: 'This is not the admin’s API token' }).waitFor();
  await screenshot(page, 'setup-wrong-token');
  assert.ok(await page.getByTestId('setup-form').isVisible());
  assert.ok(await page.getByTestId('nav-overview').isHidden());
});

test('the token from the file and a new password sign the admin in', async () => {
  await fillSetup(server.token, NEW_PASSWORD);
  await page.getByTestId('page-overview').waitFor();
  assert.match(await page.getByTestId('whoami').textContent(), /^admin · admin · /);
  const status = await (await fetch(`${server.url}/api/v4/auth/setup`)).json();
  assert.deepEqual(status, { needed: false, token_file: null });
});

test('after signing out, the admin signs in with the new password and the set-up is gone', async () => {
  await page.getByTestId('sign-out').click();
  await page.getByText('You have signed out.').waitFor();
  await page.getByTestId('login-form').waitFor();
  assert.equal(await page.getByTestId('setup-form').count(), 0);
  assert.equal(await page.getByTestId('show-setup').count(), 0);
  await signIn(page, 'admin', NEW_PASSWORD);
  await page.getByTestId('page-overview').waitFor();
  await page.getByTestId('sign-out').click();
  await page.getByText('You have signed out.').waitFor();
  await page.reload();
  await page.getByTestId('login-form').waitFor();
  assert.equal(await page.getByTestId('setup-form').count(), 0);
});

test('no script errors happened', () => {
  assert.deepEqual(page.problems, []);
});
