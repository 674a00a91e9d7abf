// The admin UI shell: sign-in, the session, navigation and hash routing
// (#/overview, #/keys, #/certificates, #/devices, #/claims, #/products,
// #/products/{product_key}, #/webhooks, #/sessions, #/ca, #/audit, #/account).

import * as api from './api.js';
import { h, mount, field, errorBox, notice } from './ui.js';
import * as overview from './pages/overview.js';
import * as keys from './pages/keys.js';
import * as certificates from './pages/certificates.js';
import * as devices from './pages/devices.js';
import * as claims from './pages/claims.js';
import * as products from './pages/products.js';
import * as webhooks from './pages/webhooks.js';
import * as sessions from './pages/sessions.js';
import * as ca from './pages/ca.js';
import * as audit from './pages/audit.js';
import * as account from './pages/account.js';

const routes = { overview, keys, certificates, devices, claims, products, webhooks, sessions, ca, audit, account };

const main = document.getElementById('main');
const topbar = document.querySelector('.topbar');
const nav = document.getElementById('nav');
const menuToggle = document.querySelector('.menu-toggle');

let session = null; // {user, csrf_token}
let renderSeq = 0;

function startSession(s) {
  session = s;
  api.setCsrfToken(s.csrf_token);
  const u = s.user;
  document.querySelector('[data-testid="whoami"]').textContent = `${u.username} · ${u.role} · ${u.enterprise}`;
  // Entries for some roles only (the Webhooks, Live sessions and Audit pages: admins and managers).
  for (const a of nav.querySelectorAll('a[data-roles]')) a.hidden = !a.dataset.roles.split(' ').includes(u.role);
  topbar.hidden = false;
}

function endSession() {
  session = null;
  api.setCsrfToken(null);
  topbar.hidden = true;
}

let signInSeq = 0;

/** After signing in: the page the hash names, or the overview. */
function enter(s) {
  startSession(s);
  if (!location.hash || location.hash === '#/' || location.hash === '#/login') location.hash = '#/overview';
  else route();
}

/**
 * The sign-in page: while no admin has a password yet (the bootstrapped admin has only its
 * API token), the first-time set-up; otherwise the sign-in form.
 */
async function showSignIn(message) {
  endSession();
  const seq = ++signInSeq;
  mount(main, h('div', { class: 'signin-wrap', 'aria-busy': 'true' }));
  let setup = null;
  try {
    setup = await api.auth.setupStatus();
  } catch {
    // Without an answer, the sign-in form is the one to show.
  }
  if (seq !== signInSeq || session) return;
  if (setup?.needed) showSetup(setup, message);
  else showLogin(message, setup);
}

function showLogin(message, setup) {
  document.title = 'Sign in · fleetca';
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false', 'data-testid': 'login-username' });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, 'data-testid': 'login-password' });
  const slot = h('div', { 'aria-live': 'polite' }, message ? notice(message, 'info') : null);
  const submit = h('button', { type: 'submit', 'data-testid': 'login-submit' }, 'Sign in');
  const form = h(
    'form',
    {
      class: 'card signin',
      'data-testid': 'login-form',
      onSubmit: async (e) => {
        e.preventDefault();
        submit.disabled = true;
        mount(slot);
        try {
          const s = await api.auth.login(username.value.trim(), password.value);
          password.value = '';
          enter(s);
        } catch (err) {
          mount(slot, errorBox(err));
          password.select();
        } finally {
          submit.disabled = false;
        }
      },
    },
    h('h1', null, 'Sign in to fleetca'),
    field('Username', username),
    field('Password', password),
    slot,
    h('div', { class: 'actions' }, submit),
    // Reached from the set-up by someone else (a manager) while it is still open.
    setup?.needed
      ? h('p', { class: 'switch' }, h('button', { type: 'button', class: 'link', 'data-testid': 'show-setup', onClick: () => showSetup(setup) }, 'First-time set-up of the admin'))
      : null,
  );
  mount(main, h('div', { class: 'signin-wrap' }, form));
  username.focus();
}

const SETUP_LABELS = { token: 'Admin API token', new_password: 'New password' };

/** The first-time set-up: the admin's API token, from the file on the server, and a new password. */
function showSetup(setup, message) {
  document.title = 'First-time set-up · fleetca';
  const token = h('input', { name: 'token', type: 'password', autocomplete: 'off', required: true, autocapitalize: 'none', spellcheck: 'false', class: 'mono', 'data-testid': 'setup-token' });
  const password = h('input', { name: 'new_password', type: 'password', autocomplete: 'new-password', required: true, minlength: 12, maxlength: 256, 'data-testid': 'setup-password' });
  const again = h('input', { name: 'confirm_password', type: 'password', autocomplete: 'new-password', required: true, 'data-testid': 'setup-confirm' });
  const slot = h('div', { 'aria-live': 'polite' }, message ? notice(message, 'info') : null);
  const submit = h('button', { type: 'submit', 'data-testid': 'setup-submit' }, 'Set the password and sign in');
  const form = h(
    'form',
    {
      class: 'card signin',
      'aria-labelledby': 'setup-title',
      'data-testid': 'setup-form',
      onSubmit: async (e) => {
        e.preventDefault();
        if (password.value !== again.value) {
          mount(slot, errorBox({ detail: 'The new passwords do not match.' }));
          again.focus();
          return;
        }
        submit.disabled = true;
        mount(slot);
        try {
          const s = await api.auth.setup(token.value.trim(), password.value);
          form.reset();
          enter(s);
        } catch (err) {
          if (err.status === 409) {
            showSignIn('The first-time set-up is done; sign in with your password.');
            return;
          }
          // The API says "wrong username or password" for a refused credential; here it was the token.
          const shown = err.status === 401 ? { detail: 'This is not the admin’s API token. Copy it again from the file named above.' } : err;
          mount(slot, errorBox(shown, SETUP_LABELS));
          if (err.status === 401) token.select();
        } finally {
          submit.disabled = false;
        }
      },
    },
    h('h1', { id: 'setup-title' }, 'First-time set-up'),
    h('p', null, 'No admin has a password yet. On its first start, fleetca wrote the admin’s API token to this file on the server:'),
    h('pre', { class: 'cmd', 'data-testid': 'setup-token-file' }, setup.token_file),
    h('p', { class: 'hint' }, 'Paste the token from that file (or the FLEETCA_BOOTSTRAP_TOKEN fleetca first started with) and choose the admin’s password. You are then signed in as the admin, and sign in with the password from then on.'),
    field('Admin API token', token, 'The text in the file named above'),
    field('New password', password, '12 to 256 characters'),
    field('New password again', again),
    slot,
    h('div', { class: 'actions' }, submit),
    h('p', { class: 'switch' }, h('button', { type: 'button', class: 'link', 'data-testid': 'show-login', onClick: () => showLogin(null, setup) }, 'Not the admin? Sign in with your password')),
  );
  mount(main, h('div', { class: 'signin-wrap' }, form));
  token.focus();
}

/** The hash's path segments: #/products/a1b2c3d4e5f -> ['products', 'a1b2c3d4e5f']. */
function hashSegments() {
  return location.hash.replace(/^#\/?/, '').split('?')[0].split('/').map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
}

function currentRoute() {
  const name = hashSegments()[0];
  return routes[name] ? name : 'overview';
}

async function route() {
  if (!session) return;
  const name = currentRoute();
  const page = routes[name];
  for (const a of nav.querySelectorAll('a')) {
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  nav.classList.remove('open');
  menuToggle.setAttribute('aria-expanded', 'false');
  document.title = `${page.title} · fleetca`;
  const seq = ++renderSeq;
  const root = h('section', { class: 'page', 'data-testid': `page-${name}`, 'aria-busy': 'true' });
  mount(main, root);
  try {
    // params: the segments after the page's name, e.g. a product key.
    const params = hashSegments().slice(1).filter(Boolean);
    await page.render(root, { user: session.user, params, isCurrent: () => seq === renderSeq });
  } catch (err) {
    if (seq === renderSeq) root.append(errorBox(err));
  } finally {
    root.setAttribute('aria-busy', 'false');
  }
}

api.setUnauthorizedHandler(() => {
  if (session) showSignIn('Your session has ended; sign in again.');
});

nav.addEventListener('click', (e) => {
  if (e.target.closest('a')) {
    nav.classList.remove('open');
    menuToggle.setAttribute('aria-expanded', 'false');
  }
});

menuToggle.addEventListener('click', () => {
  const open = nav.classList.toggle('open');
  menuToggle.setAttribute('aria-expanded', String(open));
});

document.querySelector('[data-testid="sign-out"]').addEventListener('click', async () => {
  try {
    await api.auth.logout();
  } finally {
    showSignIn('You have signed out.');
  }
});

window.addEventListener('hashchange', route);

(async () => {
  try {
    startSession(await api.auth.me());
    route();
  } catch {
    showSignIn();
  }
})();
