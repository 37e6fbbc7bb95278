// Node-RED loads this file; the node is written in TypeScript (src/nodes/dd-topk.ts) and built to dist/.
module.exports = require('../dist/src/nodes/dd-topk').default;
