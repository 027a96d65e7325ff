'use strict';

// The keyspace: a Map of key -> { value, expiresAt }. Expired keys are removed when they
// are next read.
class Store {
  constructor(now = () => Date.now()) {
    this.data = new Map();
    this.now = now;
  }

  get(key) {
    const entry = this.data.get(key);
    if (!entry) {
      return null;
    }
    if (entry.expiresAt !== null && entry.expiresAt <= this.now()) {
      this.data.delete(key);
      return null;
    }
    return entry.value;
  }

  set(key, value, ttlSeconds = null) {
    const expiresAt = ttlSeconds === null ? null : this.now() + ttlSeconds * 1000;
    this.data.set(key, { value, expiresAt });
  }

  del(key) {
    return this.data.delete(key);
  }

  expire(key, seconds) {
    if (this.get(key) === null) {
      return false;
    }
    this.data.get(key).expiresAt = this.now() + seconds * 1000;
    return true;
  }

  ttl(key) {
    if (this.get(key) === null) {
      return -2;
    }
    const { expiresAt } = this.data.get(key);
    if (expiresAt === null) {
      return -1;
    }
    return Math.ceil((expiresAt - this.now()) / 1000);
  }

  size() {
    return this.data.size;
  }
}

module.exports = { Store };
