// Node-RED loads this file; the node is written in TypeScript (src/nodes/dd-scan.ts) and built to dist/.
module.exports = require('../dist/src/nodes/dd-scan').default;
