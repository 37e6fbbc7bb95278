/*
 * Preloaded (node -r) into node-red-dev's `validate` command by test/flow-library.test.ts: the
 * command asks the Node-RED flow catalogue, the npm registry (Node-RED's releases, each
 * dependency's tree and latest version) over the network, which this machine and CI cannot
 * reach. Every such request is answered from the stand-in file named by DELTAFLOW_STAND_IN
 * ({catalogue, registry: {name: metadata}, trees: {name: ["name@version", …]}, latest: {name:
 * version}}); a request without a stand-in fails, so nothing goes to the network.
 */
'use strict';
const { readFileSync } = require('node:fs');
const path = require('node:path');
const Module = require('node:module');

const standIn = JSON.parse(readFileSync(process.env.DELTAFLOW_STAND_IN, 'utf8'));
const libs = path.join(path.dirname(require.resolve('node-red-dev/package.json')), 'src', 'libs');
/** A module as node-red-dev's own files resolve it. */
const resolve = (id) => require.resolve(id, { paths: [libs] });

function stub(id, exports) {
  const file = resolve(id);
  const m = new Module(file);
  m.filename = file;
  m.loaded = true;
  m.exports = exports;
  require.cache[file] = m;
}

// HTTP (catalogue, registry): node-red-dev's own copy of axios.
const axios = require(resolve('axios'));
axios.defaults.adapter = async (config) => {
  let data;
  if (config.url === 'https://catalogue.nodered.org/catalogue.json') data = standIn.catalogue;
  const registry = /^https:\/\/registry\.npmjs\.org\/(.+)$/.exec(config.url || '');
  if (registry) data = standIn.registry[decodeURIComponent(registry[1])];
  if (data === undefined) throw new Error(`offline: no stand-in for ${config.url}`);
  return { data, status: 200, statusText: 'OK', headers: {}, config, request: {} };
};

// D02: the production dependency tree of each dependency (from the lock file).
stub('npm-remote-ls', {
  config() {},
  ls(name, version, flatten, callback) {
    callback(standIn.trees[name] || []);
  },
});

// D03: npm-check's verdict, computed as npm-check computes it, with the latest versions of the stand-in.
const semver = require(resolve('semver'));
stub('npm-check', (options) => {
  const pkg = JSON.parse(readFileSync(path.join(options.cwd, 'package.json'), 'utf8'));
  const packages = Object.entries(pkg.dependencies || {}).map(([name, range]) => {
    const installed = JSON.parse(
      readFileSync(require.resolve(`${name}/package.json`, { paths: [options.cwd] }), 'utf8'),
    ).version;
    const latest = standIn.latest[name];
    if (!latest) throw new Error(`offline: no latest version of ${name} in the stand-in`);
    const bump = semver.diff(installed, latest);
    return {
      moduleName: name,
      packageJson: range,
      installed,
      latest,
      easyUpgrade: semver.satisfies(latest, range) && bump !== 'major' && bump !== 'premajor',
    };
  });
  return Promise.resolve({ get: (key) => (key === 'packages' ? packages : undefined) });
});
