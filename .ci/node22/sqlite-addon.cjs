// Preloaded (NODE_OPTIONS=--require) by .ci/node22-tests.sh only, never by the product:
// better-sqlite3 is not N-API, so the addon that `npm ci` built for the machine's Node
// cannot load under Node 22. Its loader asks the `bindings` package for the addon; here
// that one call is answered with the copy built for this Node's ABI ($SQLITE_ADDON_FOR_NODE),
// so the shared node_modules is never modified.
'use strict';
const Module = require('node:module');
const addon = process.env.SQLITE_ADDON_FOR_NODE;
if (!addon) throw new Error('sqlite-addon.cjs: SQLITE_ADDON_FOR_NODE is not set');
const load = Module._load;
Module._load = function (request, parent, isMain) {
  if (request === 'bindings' && parent && /[\\/]better-sqlite3[\\/]lib[\\/]/.test(parent.filename)) {
    return () => load.call(this, addon, parent, false);
  }
  return load.apply(this, arguments);
};
