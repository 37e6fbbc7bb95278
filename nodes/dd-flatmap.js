// Node-RED loads this file; the node is written in TypeScript (src/nodes/dd-flatmap.ts) and built to dist/.
module.exports = require('../dist/src/nodes/dd-flatmap').default;
