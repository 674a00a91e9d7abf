// The UI's CSV reader (web/csv.js), without a browser.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCsv, devicesFromCsv, csvCell } from '../../web/csv.js';

test('records remember the line they start on, across quoted line breaks and blank lines', () => {
  const text = '\ufeffa,b\r\n"x\ny",2\n\n"say ""hi""",3\nlast,4';
  assert.deepEqual(parseCsv(text), [
    { line: 1, fields: ['a', 'b'] },
    { line: 2, fields: ['x\ny', '2'] },
    { line: 5, fields: ['say "hi"', '3'] },
    { line: 6, fields: ['last', '4'] },
  ]);
});

test('an unclosed quote is an error naming its line', () => {
  assert.throws(() => parseCsv('a,b\n1,"open\n'), /Line 2/);
});

test('device rows drop empty cells and keep their CSV lines', () => {
  const { rows, lines, problems } = devicesFromCsv('device_id,tenant,password,ha1,realm,description\nd1,acme,,,,\n\nd2,acme,secret-pass,,r,"a, b"\n');
  assert.deepEqual(problems, []);
  assert.deepEqual(rows, [
    { device_id: 'd1', tenant: 'acme' },
    { device_id: 'd2', tenant: 'acme', password: 'secret-pass', realm: 'r', description: 'a, b' },
  ]);
  assert.deepEqual(lines, [2, 4]);
});

test('a bad header or a short row is reported before anything is sent', () => {
  const { problems } = devicesFromCsv('device_id,tenant,colour\nd1,acme,red\nd2\n');
  assert.deepEqual(problems.map((p) => [p.line, p.field]), [[1, 'header'], [3, 'row']]);
  assert.match(devicesFromCsv('tenant\nacme\n').problems[0].message, /device_id is missing/);
  assert.match(devicesFromCsv('').problems[0].message, /empty/);
});

test('csvCell quotes only what needs it', () => {
  assert.equal(csvCell('plain'), 'plain');
  assert.equal(csvCell('a,b'), '"a,b"');
  assert.equal(csvCell('say "hi"'), '"say ""hi"""');
});
