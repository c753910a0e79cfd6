'use strict';
// The compiled addon; src/proxy/source-relay.ts loads it, and a source is carried through Node's streams without it.
module.exports = require('./build/Release/source_relay.node');
