// Node-RED loads this file; the node is written in TypeScript (src/nodes/dd-distinct.ts) and built to dist/.
module.exports = require('../dist/src/nodes/dd-distinct').default;
