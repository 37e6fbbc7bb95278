#!/usr/bin/env node
// `npm start`: the demo. Starts Node-RED (the node-red of this package's own dependencies, embedded
// with RED.init) with its user directory in .demo/, this package installed into it (a symlink in
// .demo/node_modules), the drill examples deployed (first run only — later runs keep your edits),
// the seed's audit trail in the embedded event log, and the factory simulator publishing live
// events. It prints the editor URL and the dashboard URL.
//
//   node scripts/start.mjs [--host 127.0.0.1] [--port 1880] [--user-dir .demo] [--examples drill-dashboard,machine-usage,erp-bookings | all]
//                          [--no-simulator] [--no-audit-trail] [--fresh] [--node-red 4|5]
//                          [--sim-ms-per-minute 1000] [--sim-duration-ms 0 (= until stopped)]
//
// --node-red 5 runs the demo on Node-RED 5 (it needs Node.js ≥ 22.9, with this package's native module
// better-sqlite3 built for it, as `npm install` under that Node does): the node-red of the package's own
// dependencies when that is 5.x, otherwise node-red@5 installed once into .tmp/node-red-5.
//
// The end-to-end tests run this script too (with a temporary user directory and --port 0).
import { createRequire } from 'node:module';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  lstatSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import http from 'node:http';
import { spawnSync } from 'node:child_process';

const root = realpathSync(resolve(new URL('..', import.meta.url).pathname));
const require = createRequire(join(root, 'package.json'));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

const DEMO_EXAMPLES = ['drill-dashboard', 'machine-usage', 'erp-bookings'];

/** Examples that need a package this one does not bring (FlowFuse Dashboard 2.0 is no dependency). */
const EXAMPLE_NEEDS = { 'flowfuse-dashboard': '@flowfuse/node-red-dashboard' };

/** Whether Node-RED would find the node package `name` (it loads them from the user directory). */
function resolvable(name, userDir) {
  try {
    createRequire(join(userDir, 'package.json')).resolve(`${name}/package.json`);
    return true;
  } catch {
    return false;
  }
}

/**
 * The examples to deploy: `all` means every example whose packages are installed (Node-RED would
 * start no flow at all while a node type is missing); one named explicitly must have them.
 */
function chooseExamples(wanted, userDir) {
  const names =
    wanted === 'all'
      ? readdirSync(join(root, 'examples'))
          .filter((f) => f.endsWith('.json'))
          .map((f) => f.slice(0, -5))
      : wanted;
  const missing = (name) =>
    EXAMPLE_NEEDS[name] && !resolvable(EXAMPLE_NEEDS[name], userDir) ? EXAMPLE_NEEDS[name] : null;
  for (const name of names) {
    const needs = missing(name);
    if (needs && wanted !== 'all') throw new Error(`example ${name} needs ${needs}: npm install it in ${userDir}`);
    if (needs) console.log(`Example ${name} left out: it needs ${needs} (npm install it in ${userDir}).`);
  }
  return names.filter((name) => !missing(name));
}

function parseArgs(argv) {
  const opts = {
    host: '127.0.0.1',
    port: 1880,
    portGiven: false,
    userDir: join(root, '.demo'),
    examples: DEMO_EXAMPLES,
    simulator: true,
    auditTrail: true,
    fresh: false,
    msPerMinute: 1000,
    simulateMs: 0,
    nodeRed: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--host') opts.host = value();
    else if (a === '--port') {
      opts.port = Number(value());
      opts.portGiven = true;
    } else if (a === '--user-dir') opts.userDir = resolve(value());
    else if (a === '--examples') {
      const v = value();
      opts.examples = v === 'all' ? 'all' : v.split(',').filter(Boolean);
    } else if (a === '--no-simulator') opts.simulator = false;
    else if (a === '--sim-ms-per-minute') opts.msPerMinute = Number(value());
    else if (a === '--sim-duration-ms') opts.simulateMs = Number(value());
    else if (a === '--no-audit-trail') opts.auditTrail = false;
    else if (a === '--fresh') opts.fresh = true;
    else if (a === '--node-red') {
      const v = value();
      if (v !== '4' && v !== '5') throw new Error('--node-red must be 4 or 5');
      opts.nodeRed = Number(v);
    } else throw new Error(`unknown option ${a}`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error('--port must be 0…65535');
  if (!(opts.msPerMinute > 0)) throw new Error('--sim-ms-per-minute must be a positive number');
  if (!(opts.simulateMs >= 0)) throw new Error('--sim-duration-ms must be 0 (no end) or a positive number');
  return opts;
}

function realpathOrNull(path) {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

/** Makes `userDir/node_modules/<package name>` point at this checkout, as `npm install <path>` would. */
function installPackage(userDir) {
  const target = join(userDir, 'node_modules', ...pkg.name.split('/'));
  mkdirSync(join(target, '..'), { recursive: true });
  let current = null;
  try {
    current = lstatSync(target);
  } catch {
    current = null;
  }
  // A link to another (e.g. moved) checkout is replaced; a real installed copy is left alone.
  if (current?.isSymbolicLink() && realpathOrNull(target) !== root) {
    unlinkSync(target);
    current = null;
  }
  if (!current) symlinkSync(root, target, 'dir');
  // Node-RED lists user-installed modules from the user directory's package.json.
  const userPkg = join(userDir, 'package.json');
  if (!existsSync(userPkg)) {
    writeFileSync(
      userPkg,
      JSON.stringify({ name: 'deltaflow-demo', private: true, dependencies: { [pkg.name]: `file:${root}` } }, null, 2) +
        '\n',
    );
  }
}

/**
 * The nodes of the chosen examples as one flow. Examples share config nodes (the same id in each
 * file, as Import → Examples reuses them): each is kept once, and must be the same in every file.
 */
export function combineExamples(examples) {
  const byId = new Map();
  const nodes = [];
  for (const name of examples) {
    const file = join(root, 'examples', `${name}.json`);
    if (!existsSync(file)) throw new Error(`no example ${name} (examples/${name}.json)`);
    for (const node of JSON.parse(readFileSync(file, 'utf8'))) {
      const seen = byId.get(node.id);
      if (seen === undefined) {
        byId.set(node.id, { name, text: JSON.stringify(node) });
        nodes.push(node);
      } else if (seen.text !== JSON.stringify(node)) {
        throw new Error(`examples ${seen.name} and ${name} define node ${node.id} differently`);
      }
    }
  }
  return nodes;
}

/** Writes the example flows as the first flows file (never overwrites an existing one). */
function deployExamples(userDir, examples) {
  const flowFile = join(userDir, 'flows.json');
  if (existsSync(flowFile)) return false;
  writeFileSync(flowFile, JSON.stringify(combineExamples(examples), null, 2) + '\n');
  return true;
}

const majorOf = (version) => Number(String(version).split('.')[0]);

/**
 * A require for Node-RED (and the express it brings) of the major asked for: the package's own
 * node-red when it is that major (or none was asked for), otherwise node-red@<major> installed with
 * npm into .tmp/node-red-<major> (once).
 */
function nodeRedFor(major) {
  const own = require('node-red/package.json').version;
  if (major === null || majorOf(own) === major) return require;
  if (major === 5) {
    const [maj, min] = process.versions.node.split('.').map(Number);
    if (maj < 22 || (maj === 22 && min < 9)) {
      throw new Error(`Node-RED 5 needs Node.js ≥ 22.9; this is ${process.versions.node}`);
    }
  }
  const dir = join(root, '.tmp', `node-red-${major}`);
  // NB: read from the file, not required — a failed require before the install would be remembered.
  const installed = () => {
    try {
      return (
        majorOf(JSON.parse(readFileSync(join(dir, 'node_modules', 'node-red', 'package.json'), 'utf8')).version) ===
        major
      );
    } catch {
      return false;
    }
  };
  if (!installed()) {
    console.log(`Installing node-red@${major} into ${dir} (once) …`);
    mkdirSync(dir, { recursive: true });
    if (!existsSync(join(dir, 'package.json'))) {
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `node-red-${major}`, private: true }) + '\n');
    }
    const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund', `node-red@${major}`], {
      cwd: dir,
      stdio: 'inherit',
    });
    if (npm.status !== 0)
      throw new Error(`npm install node-red@${major} in ${dir} failed (${npm.error ?? npm.status})`);
    if (!installed()) throw new Error(`npm install node-red@${major} in ${dir} installed no node-red ${major}.x`);
  }
  return createRequire(join(dir, 'package.json'));
}

function listen(server, port, host) {
  return new Promise((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolveListen(server.address().port);
    });
  });
}

export async function main(argv = process.argv.slice(2)) {
  const opts = parseArgs(argv);
  if (!existsSync(join(root, 'dist', 'src', 'nodes', 'dd-dataflow.js'))) {
    throw new Error('dist/ is missing: run `npm run build` first (npm start does)');
  }
  if (opts.fresh) rmSync(opts.userDir, { recursive: true, force: true });
  mkdirSync(opts.userDir, { recursive: true });
  installPackage(opts.userDir);
  const examples = chooseExamples(opts.examples, opts.userDir);
  const deployed = deployExamples(opts.userDir, examples);

  const nodeRedRequire = nodeRedFor(opts.nodeRed);
  const express = nodeRedRequire('express');
  const RED = nodeRedRequire('node-red');
  console.log(`Node-RED ${nodeRedRequire('node-red/package.json').version} on Node.js ${process.versions.node}`);
  const app = express();
  const server = http.createServer(app);
  let port;
  try {
    port = await listen(server, opts.port, opts.host);
  } catch (err) {
    if (err?.code !== 'EADDRINUSE' || opts.portGiven) throw err;
    port = await listen(server, 0, opts.host);
    console.log(`Port ${opts.port} is in use; using ${port} instead (choose one with --port).`);
  }
  // What to print: a wildcard address is reached locally as 127.0.0.1.
  const shown =
    opts.host === '0.0.0.0' || opts.host === '::'
      ? '127.0.0.1'
      : opts.host.includes(':')
        ? `[${opts.host}]`
        : opts.host;
  const base = `http://${shown}:${port}`;

  const settings = {
    userDir: opts.userDir,
    flowFile: 'flows.json',
    credentialSecret: 'deltaflow-demo',
    httpAdminRoot: '/',
    httpNodeRoot: '/',
    uiHost: opts.host,
    uiPort: port,
    functionExternalModules: false,
    logging: { console: { level: process.env.NODE_RED_LOG_LEVEL ?? 'info', metrics: false, audit: false } },
    editorTheme: { tours: false },
    // The demo runs this checkout's nodes; installing others into .demo is not its purpose.
    externalModules: { palette: { allowInstall: false } },
    diagnostics: { enabled: false },
    telemetry: { enabled: false },
  };
  RED.init(server, settings);
  app.use(settings.httpAdminRoot, RED.httpAdmin);
  app.use(settings.httpNodeRoot, RED.httpNode);

  // The embedded log the examples' actyx-config nodes use (default file in the user directory),
  // shared in-process with them so published events wake the dataflows at once.
  const { openSharedEmbeddedLog } = require(join(root, 'dist/src/sources/shared-embedded-log.js'));
  const { DEFAULT_LOG_FILE } = require(join(root, 'dist/src/nodes/actyx-config.js'));
  const { publishAuditTrail } = require(join(root, 'dist/src/simulator/audit-trail.js'));
  const { FactorySimulator } = require(join(root, 'dist/src/simulator/factory.js'));
  const handle = openSharedEmbeddedLog(join(opts.userDir, DEFAULT_LOG_FILE), { appId: 'com.example.drill-factory' });
  const log = handle.log;
  if (opts.auditTrail && Object.keys(await log.presentOffsets()).length === 0) {
    await publishAuditTrail(log);
    console.log("Published the seed's audit trail (Fred, Drill1, order 4711, 2020-06-24 8:52–9:27).");
  }

  await RED.start();

  let simulator = null;
  if (opts.simulator) {
    simulator = new FactorySimulator({
      log,
      msPerMinute: opts.msPerMinute,
      firstOrder: 10000 + (Math.floor(Date.now() / 1000) % 80000),
      onError: (err) => console.error('factory simulator:', err instanceof Error ? err.message : err),
      onOffline: (machine, offline) =>
        console.log(
          offline
            ? `Simulator: ${machine} went offline; it keeps recording and delivers later.`
            : `Simulator: ${machine} is back online and delivers its late events.`,
        ),
    });
    simulator.start();
    if (opts.simulateMs > 0) {
      const sim = simulator;
      setTimeout(() => void sim.stop().then(() => console.log('Factory simulator finished.')), opts.simulateMs);
    }
  }

  let stopping = null;
  const stop = () =>
    (stopping ??= (async () => {
      await simulator?.stop();
      await RED.stop();
      await handle.release();
      await new Promise((r) => server.close(() => r()));
    })());
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      console.log(`\n${signal}: stopping…`);
      stop().then(
        () => process.exit(0),
        (err) => {
          console.error(err);
          process.exit(1);
        },
      );
    });
  }

  console.log('');
  console.log(
    deployed
      ? `DeltaFlow demo: examples deployed (${examples.join(', ')}), user directory ${opts.userDir}`
      : `DeltaFlow demo: your flows from ${opts.userDir} (npm start -- --fresh starts over with the examples)`,
  );
  console.log(`  Node-RED editor:  ${base}/`);
  // The simulator's shift (8 simulated hours) lasts 8 × 60 × msPerMinute real milliseconds: the page
  // shows that window, since its timestamps are real time.
  console.log(
    `  Drill dashboard:  ${base}/drill-dashboard${opts.simulator ? `?window=${Math.max(1, Math.round((8 * 60 * opts.msPerMinute) / 60000))}m` : ''}`,
  );
  console.log(
    opts.simulator
      ? '  The factory simulator is publishing events (one drill goes offline for a while and reports late). Ctrl+C stops.'
      : '  Ctrl+C stops.',
  );
  return { port, stop };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  main().catch((err) => {
    console.error(`npm start failed: ${err instanceof Error ? err.message : err}`);
    process.exit(1);
  });
}
