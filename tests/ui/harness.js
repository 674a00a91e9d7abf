// Test harness: runs the real fleetca binary on a free port with a fresh data directory,
// and drives Debian's chromium through playwright-core.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, createWriteStream, existsSync, writeFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = join(here, 'artifacts');
export const BIN = process.env.FLEETCA_BIN || join(here, '..', '..', 'target', 'debug', 'fleetca');
export const ADMIN_PASSWORD = 'correct horse battery staple';

mkdirSync(ARTIFACTS, { recursive: true });

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const alnum = (n) => {
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(randomBytes(n), (b) => chars[b % chars.length]).join('');
};

/** Flat settings as TOML: numbers and booleans bare, strings (and lists of them) quoted. */
const toml = (settings) =>
  Object.entries(settings)
    .map(([k, v]) => `${k} = ${typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v)}\n`)
    .join('');

/**
 * Starts fleetca with a bootstrap admin token, then sets the admin's password through
 * `fleetca admin set-password`. `settings` (flat keys, e.g. {webhook_allow_private: true})
 * go into a TOML settings file given with --config, followed by `settingsToml`, raw TOML for
 * what flat keys cannot say (e.g. `[[brokers]]` tables). With `firstStart`, fleetca starts as a
 * newcomer's would: it makes the admin's token itself and writes it to `admin-token` in the
 * data directory, and the admin has no password (the sign-in page offers the first-time
 * set-up). Returns {url, token, dataDir, api, stop}.
 */
export async function startServer(name, { settings, settingsToml, firstStart = false } = {}) {
  if (!existsSync(BIN)) throw new Error(`no fleetca binary at ${BIN}; run \`cargo build --bin fleetca\` or set FLEETCA_BIN`);
  const dataDir = mkdtempSync(join(tmpdir(), 'fleetca-ui-'));
  const configArgs = [];
  if (settings || settingsToml) {
    const configFile = join(dataDir, 'fleetca.toml');
    // Top-level keys first: after a table header, TOML reads keys as the table's.
    writeFileSync(configFile, toml(settings || {}) + (settingsToml ? `\n${settingsToml.trim()}\n` : ''));
    configArgs.push('--config', configFile);
  }
  let token = firstStart ? null : alnum(40);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    FLEETCA_PUBLIC_URL: url,
    FLEETCA_LOG_FORMAT: 'text',
    RUST_LOG: process.env.RUST_LOG || 'info',
  };
  if (token) env.FLEETCA_BOOTSTRAP_TOKEN = token;
  else delete env.FLEETCA_BOOTSTRAP_TOKEN;
  delete env.FLEETCA_CONFIG;
  delete env.FLEETCA_DATABASE_URL;
  const log = createWriteStream(join(ARTIFACTS, `${name}-server.log`));
  const child = spawn(BIN, ['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, ...configArgs], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  let exited = null;
  child.on('exit', (code) => { exited = code; });

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited !== null) throw new Error(`fleetca exited with ${exited}; see artifacts/${name}-server.log`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {}
    if (Date.now() > deadline) throw new Error('fleetca did not become healthy within 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  // The server bootstraps the admin on its first start: with the token given, and then its
  // password is set as the README says, with the CLI; or (firstStart) with a token it makes
  // and writes to admin-token, and no password.
  try {
    if (firstStart) {
      token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    } else {
      execFileSync(BIN, ['admin', 'set-password', 'admin', '--data-dir', dataDir, ...configArgs], {
        env: { ...env, FLEETCA_NEW_PASSWORD: ADMIN_PASSWORD },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
    }
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }

  /** Calls the API with the admin's Bearer token (or another); resolves to {status, body}. */
  async function api(method, path, body, bearer = token) {
    const res = await fetch(url + path, {
      method,
      headers: { Authorization: `Bearer ${bearer}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  async function stop() {
    if (exited === null) {
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([done, new Promise((r) => setTimeout(r, 5000))]);
      if (exited === null) child.kill('SIGKILL');
    }
    log.end();
    rmSync(dataDir, { recursive: true, force: true });
  }

  return { url, token, dataDir, api, stop };
}

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    headless: true,
  });
}

export const DESKTOP = { width: 1280, height: 900 };
export const PHONE = { width: 390, height: 844 };

/**
 * A new page on `server`. Fails the test on any console error or failed
 * script/stylesheet load (CSP violations included).
 */
export async function newPage(browser, server, { viewport = DESKTOP } = {}) {
  const context = await browser.newContext({ viewport, acceptDownloads: true, baseURL: server.url });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.problems = [];
  page.on('console', (msg) => {
    // 401/403/429 responses the UI expects show up as "Failed to load resource".
    if (msg.type() === 'error' && !/Failed to load resource/.test(msg.text())) page.problems.push(msg.text());
  });
  page.on('pageerror', (err) => page.problems.push(String(err)));
  return page;
}

export async function signIn(page, username, password) {
  await page.goto('/');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

export async function screenshot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Clicks `locator` and saves the download it starts into `dir`; returns the file path. */
export async function download(page, locator, dir) {
  const [dl] = await Promise.all([page.waitForEvent('download'), locator.click()]);
  const path = join(dir, dl.suggestedFilename());
  await dl.saveAs(path);
  return path;
}

export function tempDir() {
  return mkdtempSync(join(tmpdir(), 'fleetca-ui-files-'));
}
