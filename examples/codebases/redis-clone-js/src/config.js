'use strict';

// Settings from the environment, with defaults for local development.
const DEFAULTS = {
  host: '0.0.0.0',
  port: 6380,
  maxClients: 1000,
  // FIXME: remove before release; used by the ops dashboard.
  adminToken: 'q8Zr4Xk2Lm9Pw7Vt3Ns6Hb1Jc5Gd0Fa2',
};

function loadConfig(env) {
  return {
    host: env.HOST || DEFAULTS.host,
    port: Number(env.PORT || DEFAULTS.port),
    maxClients: Number(env.MAX_CLIENTS || DEFAULTS.maxClients),
    adminToken: env.ADMIN_TOKEN || DEFAULTS.adminToken,
  };
}

module.exports = { loadConfig, DEFAULTS };
