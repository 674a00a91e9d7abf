// Sign-in: sessions survive a reload, deep links land after sign-in, sign-out ends the
// session, wrong passwords show the API's error and repeated failures are rate-limited.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, signIn, screenshot, ADMIN_PASSWORD } from './harness.js';

let server;
let browser;
let page;

before(async () => {
  server = await startServer('signin');
  browser = await launchBrowser();
  page = await newPage(browser, server);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a deep link shows the sign-in form and then the page asked for', async () => {
  await page.goto('/#/devices');
  await page.getByTestId('login-form').waitFor();
  assert.ok(await page.getByTestId('nav-devices').isHidden());
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill(ADMIN_PASSWORD);
  await page.getByLabel('Password').press('Enter');
  await page.getByTestId('page-devices').waitFor();
  assert.equal(await page.getByTestId('nav-devices').getAttribute('aria-current'), 'page');
});

test('the session survives a reload, and sign-out ends it', async () => {
  await page.reload();
  await page.getByTestId('page-devices').waitFor();
  await page.getByTestId('sign-out').click();
  await page.getByText('You have signed out.').waitFor();
  await page.reload();
  await page.getByTestId('login-form').waitFor();
  const status = await page.evaluate(async () => (await fetch('/api/v4/auth/me')).status);
  assert.equal(status, 401);
});

test('when the session ends, the next action asks to sign in again', async () => {
  await signIn(page, 'admin', ADMIN_PASSWORD);
  await page.getByTestId('page-overview').waitFor();
  await page.context().clearCookies();
  await page.getByTestId('nav-keys').click();
  await page.getByText('Your session has ended; sign in again.').waitFor();
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('page-keys').waitFor();
  await page.getByTestId('sign-out').click();
  await page.getByTestId('login-form').waitFor();
});

test('a wrong password shows the error, and repeated failures are rate-limited', async () => {
  await page.goto('/');
  let last = '';
  for (let i = 1; i <= 5; i++) {
    await signIn(page, 'admin', `wrong password ${i}`);
    const err = page.getByTestId('error');
    await err.waitFor();
    last = await err.textContent();
    assert.equal(last, 'Wrong username or password.', `attempt ${i}`);
    if (i === 1) await screenshot(page, 'login-error');
  }
  await signIn(page, 'admin', 'wrong password 6');
  await page.getByTestId('error').filter({ hasText: 'Too many attempts' }).waitFor();
  assert.match(await page.getByTestId('error').textContent(), /^Too many attempts; try again in \d+ seconds\.$/);
  await screenshot(page, 'login-rate-limited');
  // While locked out, even the right password is refused.
  await signIn(page, 'admin', ADMIN_PASSWORD);
  await page.getByTestId('error').filter({ hasText: 'Too many attempts' }).waitFor();
  assert.ok(await page.getByTestId('nav-overview').isHidden());
});

test('no script errors happened', () => {
  assert.deepEqual(page.problems, []);
});
