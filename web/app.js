// The admin UI shell: sign-in, the session, navigation and hash routing
// (#/overview, #/keys, #/certificates, #/devices, #/claims, #/products,
// #/products/{product_key}, #/webhooks, #/ca, #/audit, #/account).

import * as api from './api.js';
import { h, mount, field, errorBox, notice } from './ui.js';
import * as overview from './pages/overview.js';
import * as keys from './pages/keys.js';
import * as certificates from './pages/certificates.js';
import * as devices from './pages/devices.js';
import * as claims from './pages/claims.js';
import * as products from './pages/products.js';
import * as webhooks from './pages/webhooks.js';
import * as ca from './pages/ca.js';
import * as audit from './pages/audit.js';
import * as account from './pages/account.js';

const routes = { overview, keys, certificates, devices, claims, products, webhooks, ca, audit, account };

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
  // Entries for some roles only (the Webhooks and Audit pages: admins and managers).
  for (const a of nav.querySelectorAll('a[data-roles]')) a.hidden = !a.dataset.roles.split(' ').includes(u.role);
  topbar.hidden = false;
}

function endSession() {
  session = null;
  api.setCsrfToken(null);
  topbar.hidden = true;
}

function showSignIn(message) {
  endSession();
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
          startSession(await api.auth.login(username.value.trim(), password.value));
          password.value = '';
          if (!location.hash || location.hash === '#/' || location.hash === '#/login') location.hash = '#/overview';
          else route();
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
  );
  mount(main, h('div', { class: 'signin-wrap' }, form));
  username.focus();
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
