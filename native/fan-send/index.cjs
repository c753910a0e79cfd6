'use strict';
// The compiled addon; src/proxy/fan-send.ts loads it, and hubs write to each listener through Node's streams without it.
module.exports = require('./build/Release/fan_send.node');
