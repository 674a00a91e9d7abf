// The UI's CSV reader (web/csv.js), without a browser.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCsv, devicesFromCsv, productDevicesFromCsv, rowProblems, csvCell } from '../../web/csv.js';

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

test('product device rows need only device_key; the other columns are optional', () => {
  const { rows, lines, problems } = productDevicesFromCsv('device_key\nlamp-1\n\n"lamp:2@site"\n');
  assert.deepEqual(problems, []);
  assert.deepEqual(rows, [{ device_key: 'lamp-1' }, { device_key: 'lamp:2@site' }]);
  assert.deepEqual(lines, [2, 4]);
  const full = productDevicesFromCsv('Device_Key,device_secret,description\nd1,,\nd2,s3cret-enough,"a, b"\n');
  assert.deepEqual(full.rows, [{ device_key: 'd1' }, { device_key: 'd2', device_secret: 's3cret-enough', description: 'a, b' }]);
  const bad = productDevicesFromCsv('device_id,device_secret\nx,y\n');
  assert.deepEqual(bad.problems.map((p) => [p.line, p.field]), [[1, 'header'], [1, 'header']]);
  assert.match(bad.problems[1].message, /device_key is missing/);
  assert.match(productDevicesFromCsv('device_key\n').problems[0].message, /header but no devices/);
});

test('rowProblems maps "{row}.{field}" errors to CSV lines', () => {
  const problems = rowProblems({ '0.device_key': ['bad'], '2.device_secret': ['short', 'spaces'], body: ['whole request'] }, [2, 4, 7]);
  assert.deepEqual(problems, [
    { line: 2, row: 0, field: 'device_key', message: 'bad' },
    { line: 7, row: 2, field: 'device_secret', message: 'short' },
    { line: 7, row: 2, field: 'device_secret', message: 'spaces' },
    { line: 1, row: undefined, field: 'body', message: 'whole request' },
  ]);
  assert.deepEqual(rowProblems(null, []), []);
});

test('csvCell quotes only what needs it', () => {
  assert.equal(csvCell('plain'), 'plain');
  assert.equal(csvCell('a,b'), '"a,b"');
  assert.equal(csvCell('say "hi"'), '"say ""hi"""');
});
