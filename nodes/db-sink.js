// Node-RED loads this file; the node is written in TypeScript (src/nodes/db-sink.ts) and built to dist/.
module.exports = require('../dist/src/nodes/db-sink').default;
