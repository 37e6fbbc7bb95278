// Node-RED loads this file; the node is written in TypeScript (src/nodes/dd-window.ts) and built to dist/.
module.exports = require('../dist/src/nodes/dd-window').default;
