// A small RFC 4180 CSV reader that remembers the line each record starts on, so errors
// about a record can point at the line of the file.

/**
 * Parses CSV text into records: [{line, fields}]. Handles quoted fields with "" escapes
 * and line breaks, CRLF or LF, a leading BOM; skips blank lines. Throws on an unclosed quote.
 */
export function parseCsv(text) {
  const records = [];
  let fields = [];
  let cell = '';
  let quoted = false;
  let line = 1;
  let start = 1;
  let touched = false; // the current record has content
  const src = text.startsWith('\ufeff') ? text.slice(1) : text;
  const endRecord = () => {
    fields.push(cell);
    if (touched || fields.length > 1) records.push({ line: start, fields });
    fields = [];
    cell = '';
    touched = false;
  };
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (quoted) {
      if (c === '"') {
        if (src[i + 1] === '"') {
          cell += '"';
          i++;
        } else quoted = false;
      } else {
        if (c === '\n') line++;
        cell += c;
      }
      continue;
    }
    if (c === '"' && cell === '') {
      quoted = true;
      touched = true;
    } else if (c === ',') {
      fields.push(cell);
      cell = '';
      touched = true;
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && src[i + 1] === '\n') i++;
      endRecord();
      line++;
      start = line;
    } else {
      cell += c;
      touched = true;
    }
  }
  if (quoted) throw new Error(`Line ${start}: a quoted field is never closed.`);
  if (touched || cell !== '') endRecord();
  return records;
}

export const DEVICE_COLUMNS = ['device_id', 'tenant', 'password', 'ha1', 'realm', 'description'];

/** The columns of a CSV of a product's devices (EnOS, Alibaba Cloud IoT). */
export const PRODUCT_DEVICE_COLUMNS = ['device_key', 'device_secret', 'description'];

/**
 * Turns CSV text whose first line names `columns` into bulk request rows and the CSV line
 * of each row. `required` columns must be in the header; rows get '' for them when empty.
 * Returns {rows, lines, problems}; problems are [{line, field, message}] found before
 * sending (bad header, wrong field count).
 */
function rowsFromCsv(text, columns, required, noun) {
  const records = parseCsv(text);
  const problems = [];
  if (!records.length) return { rows: [], lines: [], problems: [{ line: 1, field: 'file', message: 'The file is empty.' }] };
  const header = records[0].fields.map((f) => f.trim().toLowerCase());
  const unknown = header.filter((f) => !columns.includes(f));
  if (unknown.length) problems.push({ line: records[0].line, field: 'header', message: `unknown column(s): ${unknown.join(', ')}; use ${columns.join(',')}` });
  for (const need of required) {
    if (!header.includes(need)) problems.push({ line: records[0].line, field: 'header', message: `the column ${need} is missing` });
  }
  const rows = [];
  const lines = [];
  for (const rec of records.slice(1)) {
    if (rec.fields.length !== header.length) {
      problems.push({ line: rec.line, field: 'row', message: `has ${rec.fields.length} fields; the header has ${header.length}` });
    }
    const row = {};
    header.forEach((col, i) => {
      const v = (rec.fields[i] ?? '').trim();
      if (v !== '' && columns.includes(col)) row[col] = v;
    });
    for (const need of required) row[need] ??= '';
    rows.push(row);
    lines.push(rec.line);
  }
  if (!rows.length && !problems.length) problems.push({ line: 2, field: 'file', message: `The file has a header but no ${noun}.` });
  return { rows, lines, problems };
}

/** Device CSV text (DEVICE_COLUMNS) as the body of POST /api/v4/manage/devices/bulk/. */
export function devicesFromCsv(text) {
  return rowsFromCsv(text, DEVICE_COLUMNS, ['device_id', 'tenant'], 'devices');
}

/** Product device CSV text (PRODUCT_DEVICE_COLUMNS) as the body of a product's devices/bulk/. */
export function productDevicesFromCsv(text) {
  return rowsFromCsv(text, PRODUCT_DEVICE_COLUMNS, ['device_key'], 'devices');
}

/**
 * Maps a bulk request's field errors, keyed "{row}.{field}" by array index, to CSV lines:
 * [{line, row, field, message}]. Errors not about one row point at line 1.
 */
export function rowProblems(errors, lines) {
  const problems = [];
  for (const [key, messages] of Object.entries(errors || {})) {
    const m = /^(\d+)\.(.+)$/.exec(key);
    const row = m ? Number(m[1]) : undefined;
    for (const message of messages) {
      problems.push({ line: m ? lines[row] ?? row + 2 : 1, row, field: m ? m[2] : key, message });
    }
  }
  return problems;
}

/** Quotes a value for CSV output. */
export const csvCell = (v) => (/[",\r\n]/.test(String(v ?? '')) ? `"${String(v).replaceAll('"', '""')}"` : String(v ?? ''));
