/**
 * Builds the prebuilt extension into ../aistudio_jupyter/labextension with @jupyterlab/builder.
 *
 * The core's shared-package metadata comes from @jupyterlab/core-meta (a devDependency), not
 * from a Python jupyterlab install, so the build needs node_modules only: it runs the same in
 * hatch's isolated build environment, in CI and on a laptop, and never reaches the network.
 *
 *   node scripts/build.js                # production (what the wheel ships)
 *   node scripts/build.js --development  # unminified, with source maps (make lab)
 */
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');
const meta = path.join(root, 'node_modules', '@jupyterlab', 'core-meta', 'core.package.json');
const builder = path.join(root, 'node_modules', '@jupyterlab', 'builder', 'lib', 'build-labextension.js');
const core = fs.mkdtempSync(path.join(os.tmpdir(), 'aistudio-core-'));
let status = 1;
try {
  // build-labextension reads <core-path>/package.json
  fs.copyFileSync(meta, path.join(core, 'package.json'));
  const result = spawnSync(process.execPath, [builder, '--core-path', core, ...process.argv.slice(2), root], { stdio: 'inherit', cwd: root });
  status = result.status === null ? 1 : result.status;
} finally {
  fs.rmSync(core, { recursive: true, force: true });
}
process.exit(status);
