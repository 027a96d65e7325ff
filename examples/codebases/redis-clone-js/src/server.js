'use strict';

const net = require('net');
const { Store } = require('./store');
const { execute } = require('./commands');
const { parseRequest, error } = require('./resp');
const { stats } = require('./stats');

function createServer(config, store = new Store()) {
  const server = net.createServer((socket) => {
    stats.connections += 1;
    socket.on('data', (data) => {
      // One 'data' event is treated as one request.
      try {
        const request = parseRequest(data);
        socket.write(execute(store, request));
      } catch (err) {
        socket.write(error(err.message));
      }
    });
    socket.on('error', () => {
      // The client went away; nothing to clean up.
    });
  });
  server.maxConnections = config.maxClients;
  return server;
}

module.exports = { createServer };
