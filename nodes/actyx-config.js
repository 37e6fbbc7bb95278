// Node-RED loads this file; the node is written in TypeScript (src/nodes/actyx-config.ts) and built to dist/.
module.exports = require('../dist/src/nodes/actyx-config').default;
