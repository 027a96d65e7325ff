'use strict';

const test = require('node:test');
const assert = require('node:assert');
const { Store } = require('../src/store');

test('set, get and del', () => {
  const store = new Store();
  store.set('a', '1');
  assert.strictEqual(store.get('a'), '1');
  assert.strictEqual(store.del('a'), true);
  assert.strictEqual(store.get('a'), null);
});

test('keys expire', () => {
  let now = 1000;
  const store = new Store(() => now);
  store.set('a', '1', 10);
  assert.strictEqual(store.ttl('a'), 10);
  now += 10_000;
  assert.strictEqual(store.get('a'), null);
  assert.strictEqual(store.ttl('a'), -2);
});

test('expire on a missing key', () => {
  const store = new Store();
  assert.strictEqual(store.expire('nope', 5), false);
});
