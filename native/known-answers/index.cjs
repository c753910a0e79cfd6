'use strict';
// The compiled addon; src/proxy/known-answers.ts loads it, and uWebSockets.js answers every short request without it.
module.exports = require('./build/Release/known_answers.node');
