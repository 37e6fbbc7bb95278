// Node-RED loads this file; the node is written in TypeScript (src/nodes/db-query.ts) and built to dist/.
module.exports = require('../dist/src/nodes/db-query').default;
