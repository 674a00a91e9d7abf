// Products of sign-based devices (EnOS, Alibaba Cloud IoT). #/products: list, create
// (secret shown once), rotate the secret, enable/disable, delete. #/products/{product_key}:
// one product and its devices: add one (a generated secret shown once), bulk CSV (errors
// mapped to CSV lines), rotate a device secret, enable/disable, reset activation, delete.

import * as api from '../api.js';
import { h, mount, field, select, fmtDate, heading, badge, busy, confirmDialog, notice, errorBox, listView, filterBar, secretField, copyButton, downloadText, uid, table } from '../ui.js';
import { productDevicesFromCsv, rowProblems, csvCell, PRODUCT_DEVICE_COLUMNS } from '../csv.js';

export const title = 'Products';

const LABELS = {
  product_key: 'Product key',
  name: 'Name',
  enterprise: 'Enterprise',
  scheme: 'Scheme',
  dynamic_activation: 'Dynamic activation',
  max_clock_skew_seconds: 'Clock skew',
};
const DEVICE_LABELS = { device_key: 'Device key', device_secret: 'Device secret', description: 'Description' };

const SCHEMES = [['enos', 'EnOS'], ['aliyun', 'Alibaba Cloud IoT']];
const schemeLabel = (s) => SCHEMES.find(([v]) => v === s)?.[1] || s;
const skewText = (s) => (s === null || s === undefined ? 'not checked' : `± ${s} s`);
const productHref = (pk) => `#/products/${encodeURIComponent(pk)}`;

// A notice to show on the list after leaving a product's page (it was deleted).
let flash = null;

export async function render(root, ctx) {
  if (ctx.params?.length) return renderProduct(root, ctx, ctx.params[0]);
  return renderList(root, ctx);
}

/** The one-time product secret panel. */
function productSecretPanel(p, verb) {
  return h(
    'div',
    { class: 'card once', 'data-testid': 'product-secret-panel' },
    h('h2', null, `Product ${p.name} ${verb}`),
    h('p', { class: 'warning' }, h('strong', null, 'Copy the product secret now: you will not see it again.'), ' fleetca stores it sealed and never shows it after this.'),
    secretField('Product key', p.product_key, 'product-secret-key'),
    secretField('Product secret', p.product_secret, 'product-secret'),
  );
}

/** A number input for the allowed clock skew; empty means no check. */
function skewInput(value, testid) {
  return h('input', { name: 'max_clock_skew_seconds', type: 'number', min: 1, max: 86400, step: 1, inputmode: 'numeric', value: value ?? '', placeholder: 'no check', 'data-testid': testid });
}
const skewValue = (input) => (input.value.trim() === '' ? null : Number(input.value));
const SKEW_HINT = '1–86400 seconds between the client ID’s timestamp and server time; empty: not checked, as on the platforms (their SDKs reconnect with the boot-time password)';

function checkbox(name, label, checked, testid) {
  const input = h('input', { type: 'checkbox', name, checked, 'data-testid': testid });
  return { input, el: h('label', { class: 'check' }, input, ` ${label}`) };
}

/**
 * The actions a product has on the list and on its page: rotate its secret, enable or
 * disable it, delete it. `out` shows results; `changed(p)` runs after a change, and
 * `changed(null, message)` after a delete.
 */
function productActions(out, changed) {
  async function rotate(p) {
    const ok = await confirmDialog({
      title: `Rotate the secret of ${p.name}?`,
      content: h('p', null, 'The current product secret stops working at once: devices that activate or register with it need the new one. Device secrets do not change.'),
      confirmLabel: 'Rotate secret',
    });
    if (!ok) return;
    try {
      const res = await api.products.rotateSecret(p.product_key);
      mount(out, productSecretPanel(res, 'has a new secret'));
      out.scrollIntoView({ block: 'nearest' });
      changed(res);
    } catch (err) {
      mount(out, errorBox(err, LABELS));
    }
  }

  async function toggle(p) {
    try {
      const res = await api.products.patch(p.product_key, { is_active: !p.is_active });
      mount(out, notice(`${res.name} is ${res.is_active ? 'enabled' : 'disabled; its devices are refused'}.`));
      changed(res);
    } catch (err) {
      mount(out, errorBox(err, LABELS));
    }
  }

  async function remove(p) {
    const ok = await confirmDialog({
      title: `Delete ${p.name}?`,
      content: h('p', null, `The product ${p.product_key} and all its devices are deleted; they can no longer connect. This cannot be undone.`),
      confirmLabel: 'Delete product',
      danger: true,
    });
    if (!ok) return;
    try {
      await api.products.remove(p.product_key);
      const message = `${p.name} (${p.product_key}) was deleted with its devices.`;
      mount(out, notice(message));
      changed(null, message);
    } catch (err) {
      mount(out, errorBox(err, LABELS));
    }
  }

  return { rotate, toggle, remove };
}

async function renderList(root, ctx) {
  const admin = ctx.user.role === 'admin';
  const out = h('div', { 'aria-live': 'polite' }, flash ? notice(flash) : null);
  flash = null;

  // List.
  const search = h('input', { type: 'search', name: 'search', placeholder: 'product key or name contains…', 'data-testid': 'products-search' });
  const schemeFilter = select({ name: 'scheme', 'data-testid': 'products-scheme' }, [['', 'Any scheme'], ...SCHEMES]);
  const enterpriseFilter = admin ? h('input', { name: 'enterprise', placeholder: 'any', autocapitalize: 'none', spellcheck: 'false', 'data-testid': 'products-enterprise' }) : null;
  const list = listView({
    noun: 'products',
    testid: 'products-list',
    headers: ['Product', 'Product key', 'Enterprise', 'Scheme', 'Status', 'Created', 'Actions'],
    load: (q) => api.products.list(q),
    filters: () => ({ search: search.value.trim(), scheme: schemeFilter.value, enterprise: enterpriseFilter?.value.trim() }),
    row: (p) =>
      h(
        'tr',
        { 'data-testid': 'product-row', 'data-product-key': p.product_key, 'data-enterprise': p.enterprise },
        h('td', null, h('a', { href: productHref(p.product_key), 'data-testid': 'product-open' }, h('strong', null, p.name))),
        h('td', { class: 'mono small' }, p.product_key),
        h('td', null, p.enterprise),
        h(
          'td',
          null,
          schemeLabel(p.scheme),
          h('div', { class: 'muted small' }, p.dynamic_activation ? 'dynamic activation' : 'static secrets'),
        ),
        h('td', null, p.is_active ? badge('enabled', 'active') : badge('disabled', 'revoked')),
        h('td', null, fmtDate(p.created_at)),
        h(
          'td',
          { class: 'row-actions' },
          h('button', { type: 'button', class: 'secondary small', 'data-testid': 'product-rotate', onClick: () => actions.rotate(p) }, 'Rotate secret'),
          h('button', { type: 'button', class: 'secondary small', 'data-testid': 'product-toggle', onClick: () => actions.toggle(p) }, p.is_active ? 'Disable' : 'Enable'),
          h('button', { type: 'button', class: 'danger small', 'data-testid': 'product-delete', onClick: () => actions.remove(p) }, 'Delete'),
        ),
      ),
  });
  const actions = productActions(out, () => list.reload());

  // Create.
  const name = h('input', { name: 'name', required: true, maxlength: 200, 'data-testid': 'product-name' });
  const productKey = h('input', { name: 'product_key', minlength: 11, maxlength: 32, autocapitalize: 'none', spellcheck: 'false', class: 'mono', placeholder: 'generated', 'data-testid': 'product-key' });
  const enterprise = admin ? h('input', { name: 'enterprise', value: ctx.user.enterprise, autocapitalize: 'none', spellcheck: 'false', 'data-testid': 'product-enterprise' }) : null;
  const scheme = select({ name: 'scheme', required: true, 'data-testid': 'product-scheme' }, SCHEMES, 'enos');
  const skew = skewInput(null, 'product-skew');
  const dynamic = checkbox('dynamic_activation', 'Dynamic activation: devices may obtain their secret with the product secret', false, 'product-dynamic');
  const slot = h('div', { 'aria-live': 'polite' });
  const btn = h('button', { type: 'submit', 'data-testid': 'product-create' }, 'Create product');
  const form = h(
    'form',
    {
      class: 'card',
      'aria-labelledby': 'create-product-title',
      onSubmit: (e) => {
        e.preventDefault();
        busy(btn, slot, async () => {
          const body = {
            name: name.value.trim(),
            scheme: scheme.value,
            dynamic_activation: dynamic.input.checked,
            max_clock_skew_seconds: skewValue(skew),
          };
          if (productKey.value.trim()) body.product_key = productKey.value.trim();
          if (enterprise && enterprise.value.trim()) body.enterprise = enterprise.value.trim();
          try {
            const res = await api.products.create(body);
            mount(out, productSecretPanel(res, 'created'));
            form.reset();
            list.reload(true);
            out.scrollIntoView({ block: 'nearest' });
          } catch (err) {
            mount(slot, errorBox(err, LABELS));
          }
        });
      },
    },
    h('h2', { id: 'create-product-title' }, 'New product'),
    h(
      'div',
      { class: 'row' },
      field('Name', name),
      field('Scheme', scheme, 'how devices sign their MQTT password'),
      field('Product key', productKey, 'optional: 4–32 of A–Z, a–z, 0–9, "_" and "-"'),
      enterprise ? field('Enterprise', enterprise, 'e.g. nnn.acme') : null,
      field('Clock skew', skew, SKEW_HINT),
    ),
    dynamic.el,
    slot,
    h('div', { class: 'actions' }, btn),
  );

  root.append(
    ...heading('Products', 'Products of devices that sign their MQTT password with a secret (EnOS, Alibaba Cloud IoT).'),
    form,
    out,
    h(
      'div',
      { class: 'card' },
      h('h2', null, 'All products'),
      filterBar(
        [field('Search', search), field('Scheme', schemeFilter), enterpriseFilter ? field('Enterprise', enterpriseFilter) : null],
        () => list.reload(true),
        'Filter products',
      ),
      list.el,
    ),
  );
  await list.reload();
}

/** What a device just added (or given a new secret) shows once. */
function deviceSecretPanel(d, verb) {
  return h(
    'div',
    { class: 'card once', 'data-testid': 'product-device-created' },
    h('h2', null, `Device ${d.device_key} ${verb}`),
    secretField('MQTT username', d.mqtt_username, 'product-device-username'),
    d.device_secret
      ? [
          h('p', { class: 'warning' }, h('strong', null, 'Copy the device secret now: you will not see it again.'), ' fleetca stores it sealed.'),
          secretField('Device secret', d.device_secret, 'product-device-secret'),
        ]
      : h('p', null, 'The device secret you gave is stored sealed.'),
  );
}

async function renderProduct(root, ctx, productKey) {
  let product;
  try {
    product = await api.products.get(productKey);
  } catch (err) {
    if (!ctx.isCurrent()) return;
    root.append(
      ...heading('Product'),
      errorBox(err),
      h('p', null, h('a', { href: '#/products', 'data-testid': 'products-back' }, '← All products')),
    );
    return;
  }
  if (!ctx.isCurrent()) return;
  const pk = product.product_key;
  const out = h('div', { 'aria-live': 'polite' });
  const nameHeading = h('h1', { 'data-testid': 'product-title' }, product.name);
  const facts = h('div');
  const productButtons = h('div', { class: 'actions left' });

  const actions = productActions(out, (p, message) => {
    if (p) return showProduct(p);
    // Deleted: back to the list, which shows what happened.
    flash = message;
    location.hash = '#/products';
  });

  function showProduct(p) {
    product = p;
    mount(nameHeading, p.name);
    mount(
      facts,
      h(
        'dl',
        { class: 'facts', 'data-testid': 'product-facts' },
        h('dt', null, 'Product key'), h('dd', { class: 'mono', 'data-testid': 'product-fact-key' }, p.product_key, ' ', copyButton(p.product_key, 'Copy', undefined, 'Copy product key')),
        h('dt', null, 'Enterprise'), h('dd', null, p.enterprise),
        h('dt', null, 'Scheme'), h('dd', { 'data-testid': 'product-fact-scheme' }, schemeLabel(p.scheme)),
        h('dt', null, 'Dynamic activation'), h('dd', { 'data-testid': 'product-fact-dynamic' }, p.dynamic_activation ? 'yes: devices may obtain their secret with the product secret' : 'no'),
        h('dt', null, 'Clock skew'), h('dd', { 'data-testid': 'product-fact-skew' }, skewText(p.max_clock_skew_seconds)),
        h('dt', null, 'Status'), h('dd', { 'data-testid': 'product-fact-status' }, p.is_active ? badge('enabled', 'active') : badge('disabled', 'revoked')),
        h('dt', null, 'Created'), h('dd', null, fmtDate(p.created_at)),
      ),
    );
    mount(
      productButtons,
      h('button', { type: 'button', class: 'secondary', 'data-testid': 'product-edit', onClick: () => edit(product) }, 'Edit settings'),
      h('button', { type: 'button', class: 'secondary', 'data-testid': 'product-rotate', onClick: () => actions.rotate(product) }, 'Rotate product secret'),
      h('button', { type: 'button', class: 'secondary', 'data-testid': 'product-toggle', onClick: () => actions.toggle(product) }, p.is_active ? 'Disable product' : 'Enable product'),
      h('button', { type: 'button', class: 'danger', 'data-testid': 'product-delete', onClick: () => actions.remove(product) }, 'Delete product'),
    );
  }

  async function edit(p) {
    const name = h('input', { name: 'name', required: true, maxlength: 200, value: p.name, 'data-testid': 'edit-name' });
    const skew = skewInput(p.max_clock_skew_seconds, 'edit-skew');
    const dynamic = checkbox('dynamic_activation', 'Dynamic activation', p.dynamic_activation, 'edit-dynamic');
    const data = await confirmDialog({
      title: `Settings of ${p.name}`,
      testid: 'edit-dialog',
      confirmLabel: 'Save',
      content: [field('Name', name), field('Clock skew', skew, SKEW_HINT), dynamic.el],
    });
    if (!data) return;
    try {
      const res = await api.products.patch(p.product_key, {
        name: name.value.trim(),
        dynamic_activation: dynamic.input.checked,
        max_clock_skew_seconds: skewValue(skew),
      });
      mount(out, notice(`${res.name} was saved.`));
      showProduct(res);
    } catch (err) {
      mount(out, errorBox(err, LABELS));
    }
  }

  // Devices.
  const search = h('input', { type: 'search', name: 'search', placeholder: 'device key contains…', 'data-testid': 'product-devices-search' });
  const activeFilter = select({ name: 'is_active', 'data-testid': 'product-devices-status' }, [['', 'All'], ['true', 'Enabled'], ['false', 'Disabled']]);
  const list = listView({
    noun: 'devices',
    testid: 'product-devices-list',
    headers: ['Device key', 'MQTT username', 'Activation', 'Status', 'Created', 'Actions'],
    load: (q) => api.products.devices.list(pk, q),
    filters: () => ({ search: search.value.trim(), is_active: activeFilter.value }),
    row: (d) =>
      h(
        'tr',
        { 'data-testid': 'product-device-row', 'data-device-key': d.device_key, 'data-activated': String(d.activated) },
        h('td', null, h('strong', null, d.device_key), d.description ? h('div', { class: 'muted small' }, d.description) : null),
        h('td', { class: 'mono small', 'data-testid': 'product-device-row-username' }, d.mqtt_username),
        h(
          'td',
          { 'data-testid': 'product-device-activation' },
          d.activated ? [badge('activated', 'active'), h('div', { class: 'muted small' }, fmtDate(d.activated_at))] : badge('not activated', 'expired'),
        ),
        h('td', null, d.is_active ? badge('enabled', 'active') : badge('disabled', 'revoked')),
        h('td', null, fmtDate(d.created_at)),
        h(
          'td',
          { class: 'row-actions' },
          h('button', { type: 'button', class: 'secondary small', 'data-testid': 'product-device-rotate', onClick: () => rotateDevice(d) }, 'Rotate secret'),
          h('button', { type: 'button', class: 'secondary small', 'data-testid': 'product-device-toggle', onClick: () => toggleDevice(d) }, d.is_active ? 'Disable' : 'Enable'),
          d.activated
            ? h('button', { type: 'button', class: 'secondary small', 'data-testid': 'product-device-reset', onClick: () => resetDevice(d) }, 'Reset activation')
            : null,
          h('button', { type: 'button', class: 'danger small', 'data-testid': 'product-device-delete', onClick: () => removeDevice(d) }, 'Delete'),
        ),
      ),
  });

  async function rotateDevice(d) {
    const ok = await confirmDialog({
      title: `Rotate the secret of ${d.device_key}?`,
      content: h('p', null, 'A new device secret is generated; the old one stops working at once.'),
      confirmLabel: 'Rotate secret',
    });
    if (!ok) return;
    try {
      const res = await api.products.devices.rotateSecret(pk, d.device_key);
      mount(out, deviceSecretPanel(res, 'has a new secret'));
      out.scrollIntoView({ block: 'nearest' });
      list.reload();
    } catch (err) {
      mount(out, errorBox(err, DEVICE_LABELS));
    }
  }

  async function toggleDevice(d) {
    try {
      const res = await api.products.devices.patch(pk, d.device_key, { is_active: !d.is_active });
      mount(out, notice(`${res.device_key} is ${res.is_active ? 'enabled' : 'disabled'}.`));
      list.reload();
    } catch (err) {
      mount(out, errorBox(err, DEVICE_LABELS));
    }
  }

  async function resetDevice(d) {
    const ok = await confirmDialog({
      title: `Reset the activation of ${d.device_key}?`,
      content: h('p', null, 'The device may then activate again: with dynamic activation, anyone holding the product secret can obtain its device secret once more.'),
      confirmLabel: 'Reset activation',
    });
    if (!ok) return;
    try {
      const res = await api.products.devices.resetActivation(pk, d.device_key);
      mount(out, notice(`${res.device_key} may activate again.`));
      list.reload();
    } catch (err) {
      mount(out, errorBox(err, DEVICE_LABELS));
    }
  }

  async function removeDevice(d) {
    const ok = await confirmDialog({
      title: `Delete ${d.device_key}?`,
      content: h('p', null, `The device is removed from product ${pk} and can no longer connect.`),
      confirmLabel: 'Delete device',
      danger: true,
    });
    if (!ok) return;
    try {
      await api.products.devices.remove(pk, d.device_key);
      mount(out, notice(`${d.device_key} was deleted.`));
      list.reload();
    } catch (err) {
      mount(out, errorBox(err, DEVICE_LABELS));
    }
  }

  // Add one.
  const deviceKey = h('input', { name: 'device_key', required: true, maxlength: 64, autocapitalize: 'none', spellcheck: 'false', 'data-testid': 'product-device-key' });
  const description = h('input', { name: 'description', maxlength: 500, 'data-testid': 'product-device-description' });
  const secretMode = uid('secret');
  const radios = ['generate', 'set'].map((v) => h('input', { type: 'radio', name: secretMode, value: v, checked: v === 'generate', 'data-testid': `product-device-secret-${v}` }));
  const secret = h('input', { name: 'device_secret', type: 'text', autocomplete: 'new-password', minlength: 16, maxlength: 128, spellcheck: 'false', class: 'mono', 'data-testid': 'product-device-secret-input' });
  const secretRow = field('Device secret', secret, '16–128 printable ASCII characters, no spaces');
  const syncSecret = () => {
    const set = radios[1].checked;
    secretRow.hidden = !set;
    secret.required = set;
  };
  radios.forEach((r) => r.addEventListener('change', syncSecret));
  syncSecret();
  const slot = h('div', { 'aria-live': 'polite' });
  const btn = h('button', { type: 'submit', 'data-testid': 'product-device-create' }, 'Add device');
  const form = h(
    'form',
    {
      class: 'card',
      'aria-labelledby': 'add-device-title',
      onSubmit: (e) => {
        e.preventDefault();
        busy(btn, slot, async () => {
          const body = { device_key: deviceKey.value.trim() };
          if (radios[1].checked) body.device_secret = secret.value;
          if (description.value.trim()) body.description = description.value.trim();
          try {
            const res = await api.products.devices.create(pk, body);
            mount(out, deviceSecretPanel(res, 'added'));
            form.reset();
            syncSecret();
            list.reload(true);
            out.scrollIntoView({ block: 'nearest' });
          } catch (err) {
            mount(slot, errorBox(err, DEVICE_LABELS));
          }
        });
      },
    },
    h('h2', { id: 'add-device-title' }, 'Add a device'),
    h('div', { class: 'row' }, field('Device key', deviceKey, 'A–Z, a–z, 0–9, "_", ".", ":", "@" and "-"'), field('Description', description, 'optional')),
    h(
      'fieldset',
      { class: 'radios' },
      h('legend', null, 'Device secret'),
      h('label', null, radios[0], ' Generate a secret'),
      h('label', null, radios[1], ' Set a secret'),
    ),
    h('div', { class: 'row' }, secretRow),
    slot,
    h('div', { class: 'actions' }, btn),
  );

  showProduct(product);
  root.append(
    h('p', { class: 'breadcrumb' }, h('a', { href: '#/products', 'data-testid': 'products-back' }, '← All products')),
    nameHeading,
    h('p', { class: 'lead' }, `${schemeLabel(product.scheme)} product · devices sign in with the MQTT username `, h('code', null, `{device_key}&${pk}`)),
    h('div', { class: 'card', 'data-testid': 'product-detail' }, facts, productButtons),
    out,
    form,
    bulkForm(pk, () => list.reload(true)),
    h(
      'div',
      { class: 'card' },
      h('h2', null, 'Devices'),
      filterBar([field('Search', search), field('Status', activeFilter)], () => list.reload(true), 'Filter devices'),
      list.el,
    ),
  );
  await list.reload();
}

/** Bulk registration of a product's devices from a CSV file. */
function bulkForm(pk, onCreated) {
  const file = h('input', { type: 'file', accept: '.csv,text/csv', required: true, 'data-testid': 'product-bulk-file' });
  const report = h('div', { 'aria-live': 'polite', 'data-testid': 'product-bulk-report' });
  const btn = h('button', { type: 'submit', 'data-testid': 'product-bulk-upload' }, 'Upload and add');

  function problemTable(problems, rows) {
    const sorted = [...problems].sort((a, b) => a.line - b.line);
    return table(
      ['CSV line', 'Device key', 'Column', 'Problem'],
      sorted.map((p) =>
        h(
          'tr',
          { 'data-testid': 'product-bulk-error', 'data-line': p.line },
          h('td', null, String(p.line)),
          h('td', null, p.row !== undefined ? rows[p.row]?.device_key || '' : ''),
          h('td', null, p.field),
          h('td', null, p.message),
        ),
      ),
    );
  }

  const form = h(
    'form',
    {
      class: 'card',
      'aria-labelledby': 'product-bulk-title',
      onSubmit: (e) => {
        e.preventDefault();
        busy(btn, report, async () => {
          const f = file.files[0];
          if (!f) return;
          let parsed;
          try {
            parsed = productDevicesFromCsv(await f.text());
          } catch (err) {
            mount(report, errorBox({ detail: `${f.name}: ${err.message}` }));
            return;
          }
          const { rows, lines, problems } = parsed;
          if (problems.length) {
            mount(report, errorBox({ detail: `${f.name} cannot be sent; nothing was written.` }), problemTable(problems, rows));
            return;
          }
          try {
            const res = await api.products.devices.bulk(pk, rows);
            const generated = res.results.filter((d) => d.device_secret);
            mount(
              report,
              notice(`Added ${res.created} device${res.created === 1 ? '' : 's'} from ${f.name}.`, 'success', 'product-bulk-success'),
              generated.length
                ? h(
                    'p',
                    { class: 'warning' },
                    h('strong', null, `${generated.length} generated secret${generated.length === 1 ? ' is' : 's are'} shown only now. `),
                    h(
                      'button',
                      {
                        type: 'button',
                        'data-testid': 'product-bulk-download',
                        onClick: () =>
                          downloadText(
                            `${pk}-device-secrets.csv`,
                            ['product_key,device_key,mqtt_username,device_secret', ...generated.map((d) => [d.product_key, d.device_key, d.mqtt_username, d.device_secret].map(csvCell).join(','))].join('\r\n') + '\r\n',
                            'text/csv',
                          ),
                      },
                      'Download them as CSV',
                    ),
                  )
                : null,
            );
            form.reset();
            onCreated();
          } catch (err) {
            const problemsByLine = rowProblems(err.errors, lines);
            if (!problemsByLine.length) {
              mount(report, errorBox(err));
              return;
            }
            // The API keys errors by array index; the table shows CSV lines instead.
            const bad = new Set(problemsByLine.map((p) => p.line)).size;
            mount(
              report,
              errorBox({ detail: `${f.name}: ${bad} line${bad === 1 ? ' has' : 's have'} problems. Nothing was written.` }),
              h('p', null, 'Fix these lines and upload the file again.'),
              problemTable(problemsByLine, rows),
            );
          }
        });
      },
    },
    h('h2', { id: 'product-bulk-title' }, 'Add devices from CSV'),
    h(
      'p',
      null,
      'The first line names the columns: ',
      h('code', null, PRODUCT_DEVICE_COLUMNS.join(',')),
      ' (only device_key is required). Leave device_secret empty to have a secret generated. All rows are written, or none.',
    ),
    field('CSV file', file),
    report,
    h('div', { class: 'actions' }, btn),
  );
  return form;
}
