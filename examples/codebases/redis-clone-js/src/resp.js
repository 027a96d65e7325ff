'use strict';

// RESP2: https://redis.io/docs/latest/develop/reference/protocol-spec/

const CRLF = '\r\n';

function simpleString(text) {
  return `+${text}${CRLF}`;
}

function error(message) {
  return `-ERR ${message}${CRLF}`;
}

function integer(n) {
  return `:${n}${CRLF}`;
}

function bulkString(value) {
  if (value === null || value === undefined) {
    return `$-1${CRLF}`;
  }
  const text = String(value);
  return `$${Buffer.byteLength(text)}${CRLF}${text}${CRLF}`;
}

function array(items) {
  return `*${items.length}${CRLF}${items.map(bulkString).join('')}`;
}

// Parses one request: an array of bulk strings, or an inline command ("PING\r\n").
// Returns the command as an array of strings.
function parseRequest(data) {
  const text = data.toString('utf8');
  if (text[0] !== '*') {
    return text.trim().split(/\s+/);
  }
  const lines = text.split(CRLF);
  const count = parseInt(lines[0].slice(1), 10);
  const args = [];
  let i = 1;
  for (let n = 0; n < count; n++) {
    // lines[i] is "$<length>", lines[i + 1] the value
    args.push(lines[i + 1]);
    i += 2;
  }
  return args;
}

module.exports = { simpleString, error, integer, bulkString, array, parseRequest, CRLF };
