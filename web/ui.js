// Small DOM helpers shared by the pages. Everything is built with DOM calls (never
// innerHTML), so text from the API cannot become markup.

let nextId = 0;
/** A fresh element id for label/aria wiring. */
export const uid = (prefix = 'f') => `${prefix}-${++nextId}`;

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

function assign(el, props) {
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    // value/checked/selected on inputs and options go in as attributes: they are then
    // also the defaults that form.reset() returns to.
    else if (k === 'value' && (el.tagName === 'SELECT' || el.tagName === 'TEXTAREA')) el.value = v;
    else if (['disabled', 'hidden', 'required', 'readOnly', 'multiple'].includes(k)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

/** Creates an HTML element: h('button', {type: 'button', onClick}, 'Save'). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  assign(el, props);
  append(el, children);
  return el;
}

/** Creates an SVG element. */
export function s(tag, props, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  assign(el, props);
  append(el, children);
  return el;
}

/** Replaces an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** "2027-11-22 23:29 UTC" */
export function fmtDate(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** A labelled form field; `input` gets an id and the label points at it. */
export function field(label, input, hint) {
  input.id ||= uid();
  const hintEl = hint ? h('small', { class: 'hint', id: `${input.id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), input, hintEl);
}

/** A <select> from [value, label] pairs. */
export function select(props, options, current) {
  return h(
    'select',
    props,
    options.map(([value, label]) => h('option', { value, selected: String(value) === String(current ?? '') }, label)),
  );
}

/**
 * An alert showing an API error's detail and its field errors; `labels` maps field names
 * to what the form calls them.
 */
export function errorBox(err, labels = {}) {
  const detail = err?.detail || err?.message || String(err);
  const fields = err?.errors
    ? Object.entries(err.errors).map(([f, msgs]) =>
        h('li', null, h('strong', null, labels[f] || f), ': ', msgs.join('; ')),
      )
    : [];
  return h(
    'div',
    { class: 'alert error', role: 'alert', 'data-testid': 'error' },
    h('p', null, detail),
    fields.length ? h('ul', { 'data-testid': 'field-errors' }, fields) : null,
  );
}

/** A success or info notice. */
export function notice(text, kind = 'success', testid = 'notice') {
  return h('div', { class: `alert ${kind}`, role: 'status', 'data-testid': testid }, text);
}

/** Shows an error (or clears, for null) in a slot element. */
export function showError(slot, err, labels) {
  mount(slot, err ? errorBox(err, labels) : null);
}

/**
 * Runs `fn` with the button disabled and the slot cleared; shows the error in the slot
 * if it throws.
 */
export async function busy(button, slot, fn) {
  if (button) button.disabled = true;
  if (slot) mount(slot);
  try {
    return await fn();
  } catch (err) {
    if (slot) showError(slot, err);
    else throw err;
  } finally {
    if (button) button.disabled = false;
  }
}

/** Saves text as a file through a Blob URL. */
export function downloadText(filename, text, type = 'application/x-pem-file') {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = h('textarea', { class: 'offscreen', readonly: true }, text);
    document.body.append(ta);
    ta.select();
    const ok = document.execCommand('copy');
    ta.remove();
    return ok;
  }
}

/** A button that copies `text()` to the clipboard and says so. */
export function copyButton(getText, label = 'Copy', testid, ariaLabel) {
  const status = h('span', { class: 'copy-status', role: 'status' });
  const btn = h(
    'button',
    {
      type: 'button',
      class: 'secondary',
      'data-testid': testid,
      'aria-label': ariaLabel,
      onClick: async () => {
        const ok = await copyText(typeof getText === 'function' ? getText() : getText);
        status.textContent = ok ? 'Copied.' : 'Copy failed; select the text and copy it by hand.';
      },
    },
    label,
  );
  return h('span', { class: 'copy' }, btn, status);
}

/** A read-only secret or PEM with a copy button. */
export function secretField(label, value, testid, { multiline = false } = {}) {
  const input = multiline
    ? h('textarea', { readonly: true, rows: Math.min(12, value.split('\n').length), 'data-testid': testid, spellcheck: 'false' }, value)
    : h('input', { type: 'text', readonly: true, value, 'data-testid': testid, spellcheck: 'false', class: 'mono' });
  input.addEventListener('focus', () => input.select());
  return h('div', { class: 'secret' }, field(label, input), copyButton(() => value, 'Copy', undefined, `Copy ${label}`));
}

/**
 * Asks for confirmation in a modal <dialog>. `content` may hold form controls; resolves
 * to their FormData on confirm, or null on cancel.
 */
export function confirmDialog({ title, content = [], confirmLabel = 'Confirm', danger = false, testid = 'confirm-dialog' }) {
  return new Promise((resolve) => {
    const titleId = uid('dlg');
    const form = h(
      'form',
      { method: 'dialog' },
      h('h2', { id: titleId }, title),
      content,
      h(
        'div',
        { class: 'actions' },
        h('button', { value: 'cancel', formnovalidate: true, class: 'secondary', 'data-testid': 'dialog-cancel' }, 'Cancel'),
        h('button', { value: 'confirm', class: danger ? 'danger' : '', 'data-testid': 'dialog-confirm' }, confirmLabel),
      ),
    );
    const dialog = h('dialog', { 'aria-labelledby': titleId, 'data-testid': testid }, form);
    let data = null;
    form.addEventListener('submit', (e) => {
      if (e.submitter?.value === 'confirm') data = new FormData(form);
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(dialog.returnValue === 'confirm' ? data : null);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Previous/next links and "page X of Y" for a {count} list. */
export function pager({ count, page, pageSize, onPage, noun = 'items', label = 'Pages' }) {
  const pages = Math.max(1, Math.ceil(count / pageSize));
  const first = count === 0 ? 0 : (page - 1) * pageSize + 1;
  const last = Math.min(count, page * pageSize);
  return h(
    'nav',
    { class: 'pager', 'aria-label': label, 'data-testid': 'pager' },
    h('button', { type: 'button', class: 'secondary', disabled: page <= 1, onClick: () => onPage(page - 1), 'data-testid': 'page-prev' }, '← Previous'),
    h('span', { 'data-testid': 'page-info' }, count === 0 ? `No ${noun}` : `${first}–${last} of ${count} ${noun} · page ${page} of ${pages}`),
    h('button', { type: 'button', class: 'secondary', disabled: page >= pages, onClick: () => onPage(page + 1), 'data-testid': 'page-next' }, 'Next →'),
  );
}

/**
 * A table in a horizontally scrolling wrapper. Cells get their column's name as
 * data-label, so narrow screens can show each row as a card.
 */
export function table(headers, rows, props = {}) {
  for (const tr of rows) [...tr.children].forEach((td, i) => td.setAttribute('data-label', headers[i] ?? ''));
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      props,
      h('thead', null, h('tr', null, headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, rows),
    ),
  );
}

/** A coloured status word. */
export const badge = (text, kind = text) => h('span', { class: `badge ${kind}` }, text);

/** A page heading with an optional line below. */
export const heading = (title, lead) => [h('h1', null, title), lead ? h('p', { class: 'lead' }, lead) : null];

/**
 * A paginated table fed by a list endpoint ({count, results}). `load(query)` fetches a
 * page; `filters()` gives the current filter values; `row(item)` makes a <tr>; `empty`
 * is what an empty page says (a string, or a function giving one; default "No {noun} match."). A `pagerLabel` names the pager
 * (when a page holds more than one list); with `quiet`, the pager shows only when there is
 * more than one page.
 */
export function listView({ load, filters = () => ({}), headers, row, noun, testid, pageSize = 25, empty, pagerLabel, quiet = false }) {
  const state = { page: 1, pageSize };
  const slot = h('div', { 'aria-live': 'polite' });
  const body = h('div', { 'data-testid': testid });
  const sizeSelect = select({ 'aria-label': 'Rows per page', onChange: () => { state.pageSize = Number(sizeSelect.value); reload(true); } }, [10, 25, 50, 100].map((n) => [n, `${n} per page`]), pageSize);
  let seq = 0;
  async function reload(resetPage = false) {
    if (resetPage) state.page = 1;
    const mine = ++seq;
    body.setAttribute('aria-busy', 'true');
    try {
      const data = await load({ ...filters(), page: state.page, page_size: state.pageSize });
      if (mine !== seq) return;
      if (!data.results.length && state.page > 1 && data.count > 0) {
        state.page = Math.ceil(data.count / state.pageSize);
        return reload();
      }
      mount(slot);
      const rows = data.results.map(row);
      const onePage = state.page === 1 && data.count <= state.pageSize;
      mount(
        body,
        rows.length ? table(headers, rows) : h('p', { class: 'muted empty' }, (typeof empty === 'function' ? empty() : empty) || `No ${noun} match.`),
        quiet && onePage
          ? null
          : h('div', { class: 'pager-row' }, pager({ count: data.count, page: state.page, pageSize: state.pageSize, noun, label: pagerLabel, onPage: (p) => { state.page = p; reload(); } }), sizeSelect),
      );
    } catch (err) {
      if (mine === seq) showError(slot, err);
    } finally {
      if (mine === seq) body.setAttribute('aria-busy', 'false');
    }
  }
  return { el: h('div', { class: 'list' }, slot, body), reload };
}

/** A filter bar: a search box plus other controls; submitting or changing reloads. */
export function filterBar(controls, onChange, label = 'Filters') {
  let timer;
  const apply = () => {
    clearTimeout(timer);
    onChange();
  };
  const form = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': label, onSubmit: (e) => { e.preventDefault(); apply(); } },
    controls,
    h('button', { type: 'submit', class: 'secondary' }, 'Apply'),
  );
  form.addEventListener('change', (e) => { if (e.target.tagName === 'SELECT') apply(); });
  // Typing in a search box applies itself after a pause.
  form.addEventListener('input', (e) => {
    if (e.target.type !== 'search') return;
    clearTimeout(timer);
    timer = setTimeout(apply, 350);
  });
  return form;
}
