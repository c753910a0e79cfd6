'use strict';
// The compiled addon; src/dns/udp-batch.ts loads it and falls back to node:dgram without it.
module.exports = require('./build/Release/udp_batch.node');
