// Account: who is signed in, and setting one's own password.

import * as api from '../api.js';
import { h, mount, field, heading, busy, notice, errorBox, fmtDate } from '../ui.js';

export const title = 'Account';

const LABELS = { current_password: 'Current password', new_password: 'New password' };

export async function render(root, ctx) {
  const u = ctx.user;
  const current = h('input', { type: 'password', name: 'current_password', autocomplete: 'current-password', 'data-testid': 'current-password' });
  const next = h('input', { type: 'password', name: 'new_password', autocomplete: 'new-password', required: true, minlength: 12, maxlength: 256, 'data-testid': 'new-password' });
  const again = h('input', { type: 'password', name: 'confirm_password', autocomplete: 'new-password', required: true, 'data-testid': 'confirm-password' });
  const slot = h('div', { 'aria-live': 'polite' });
  const btn = h('button', { type: 'submit', 'data-testid': 'password-submit' }, 'Change password');
  const form = h(
    'form',
    {
      class: 'card',
      'aria-labelledby': 'password-title',
      onSubmit: (e) => {
        e.preventDefault();
        if (next.value !== again.value) {
          mount(slot, errorBox({ detail: 'The new passwords do not match.' }));
          again.focus();
          return;
        }
        busy(btn, slot, async () => {
          try {
            await api.auth.setPassword(current.value, next.value);
            form.reset();
            mount(slot, notice('Your password is changed. Your other sessions have been signed out.', 'success', 'password-changed'));
          } catch (err) {
            mount(slot, errorBox(err, LABELS));
          }
        });
      },
    },
    h('h2', { id: 'password-title' }, 'Change your password'),
    field('Current password', current),
    field('New password', next, '12 to 256 characters'),
    field('New password again', again),
    slot,
    h('div', { class: 'actions' }, btn),
  );
  root.append(
    ...heading('Account'),
    h(
      'div',
      { class: 'card' },
      h(
        'dl',
        { class: 'facts' },
        h('dt', null, 'Username'), h('dd', { 'data-testid': 'account-username' }, u.username),
        h('dt', null, 'Role'), h('dd', null, u.role),
        h('dt', null, 'Enterprise'), h('dd', null, u.enterprise),
        h('dt', null, 'Created'), h('dd', null, fmtDate(u.created_at)),
      ),
    ),
    form,
  );
}
