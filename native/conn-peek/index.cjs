'use strict';
// The compiled addon; src/proxy/conn-peek.ts loads it, and the front door serves every connection itself without it.
module.exports = require('./build/Release/conn_peek.node');
