'use strict';

const { loadConfig } = require('./config');
const { createServer } = require('./server');

const config = loadConfig(process.env);
const server = createServer(config);

server.listen(config.port, config.host, () => {
  const { address, port } = server.address();
  console.log(`mini-redis-js listening on ${address}:${port}`);
});

process.on('SIGINT', () => {
  server.close(() => process.exit(0));
});
