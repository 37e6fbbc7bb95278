#!/usr/bin/env node
// Part of `npm run build`: Node-RED looks for a node's icon in an `icons` folder beside the node's
// .js file, so the icons kept at the package's top level are copied to nodes/icons/.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const from = join(root, 'icons');
const to = join(root, 'nodes', 'icons');
mkdirSync(to, { recursive: true });
for (const name of readdirSync(from))
  if (name.endsWith('.svg') || name.endsWith('.png')) copyFileSync(join(from, name), join(to, name));
