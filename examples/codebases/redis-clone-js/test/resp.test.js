'use strict';

const test = require('node:test');
const assert = require('node:assert');
const resp = require('../src/resp');

test('encodes replies', () => {
  assert.strictEqual(resp.simpleString('OK'), '+OK\r\n');
  assert.strictEqual(resp.integer(3), ':3\r\n');
  assert.strictEqual(resp.bulkString('hé'), '$3\r\nhé\r\n');
  assert.strictEqual(resp.bulkString(null), '$-1\r\n');
  assert.strictEqual(resp.array(['a', 'b']), '*2\r\n$1\r\na\r\n$1\r\nb\r\n');
});

test('parses an array request', () => {
  const data = Buffer.from('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n');
  assert.deepStrictEqual(resp.parseRequest(data), ['SET', 'k', 'value']);
});

test('parses an inline request', () => {
  assert.deepStrictEqual(resp.parseRequest(Buffer.from('PING\r\n')), ['PING']);
});
