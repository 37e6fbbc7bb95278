// Node-RED loads this file; the node is written in TypeScript (src/nodes/actyx-subscribe.ts) and built to dist/.
module.exports = require('../dist/src/nodes/actyx-subscribe').default;
