'use strict';

const resp = require('./resp');
const { record, info } = require('./stats');

function ping(store, args) {
  return args.length > 0 ? resp.bulkString(args[0]) : resp.simpleString('PONG');
}

function get(store, [key]) {
  return resp.bulkString(store.get(key));
}

function set(store, [key, value, option, seconds]) {
  if (option && option.toUpperCase() === 'EX') {
    store.set(key, value, Number(seconds));
  } else {
    store.set(key, value);
  }
  return resp.simpleString('OK');
}

function del(store, keys) {
  let removed = 0;
  for (const key of keys) {
    if (store.del(key)) {
      removed += 1;
    }
  }
  return resp.integer(removed);
}

function expire(store, [key, seconds]) {
  return resp.integer(store.expire(key, Number(seconds)) ? 1 : 0);
}

function ttl(store, [key]) {
  return resp.integer(store.ttl(key));
}

function incr(store, [key]) {
  const current = store.get(key);
  const next = Number(current || 0) + 1;
  store.set(key, String(next));
  return resp.integer(next);
}

function infoCommand() {
  return resp.bulkString(info());
}

const COMMANDS = {
  PING: { handler: ping, arity: -1 },
  GET: { handler: get, arity: 2 },
  SET: { handler: set, arity: -3 },
  DEL: { handler: del, arity: -2 },
  EXPIRE: { handler: expire, arity: 3 },
  TTL: { handler: ttl, arity: 2 },
  INCR: { handler: incr, arity: 2 },
  INFO: { handler: infoCommand, arity: -1 },
};

// Arity as in Redis: positive is exact (command name included), negative is a minimum.
function arityOk(arity, count) {
  return arity >= 0 ? count === arity : count >= -arity;
}

function execute(store, request) {
  if (request.length === 0) {
    return resp.error('empty command');
  }
  const name = request[0].toUpperCase();
  const command = COMMANDS[name];
  if (!command) {
    return resp.error(`unknown command '${request[0]}'`);
  }
  if (!arityOk(command.arity, request.length)) {
    return resp.error(`wrong number of arguments for '${name.toLowerCase()}' command`);
  }
  record(name);
  return command.handler(store, request.slice(1));
}

module.exports = { execute, COMMANDS };
