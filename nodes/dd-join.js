// Node-RED loads this file; the node is written in TypeScript (src/nodes/dd-join.ts) and built to dist/.
module.exports = require('../dist/src/nodes/dd-join').default;
