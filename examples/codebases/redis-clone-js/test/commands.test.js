'use strict';

const test = require('node:test');
const assert = require('node:assert');
const { Store } = require('../src/store');
const { execute } = require('../src/commands');

test('GET and SET', () => {
  const store = new Store();
  assert.strictEqual(execute(store, ['SET', 'k', 'v']), '+OK\r\n');
  assert.strictEqual(execute(store, ['get', 'k']), '$1\r\nv\r\n');
});

test('INCR counts up from nothing', () => {
  const store = new Store();
  assert.strictEqual(execute(store, ['INCR', 'n']), ':1\r\n');
  assert.strictEqual(execute(store, ['INCR', 'n']), ':2\r\n');
});

test('DEL counts removed keys', () => {
  const store = new Store();
  execute(store, ['SET', 'a', '1']);
  assert.strictEqual(execute(store, ['DEL', 'a', 'b']), ':1\r\n');
});

test('arity and unknown commands', () => {
  const store = new Store();
  assert.match(execute(store, ['GET']), /wrong number of arguments/);
  assert.match(execute(store, ['FLY']), /unknown command/);
});
