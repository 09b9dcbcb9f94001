'use strict';

// quickstartFunctions: the mini programs' general-purpose cloud function, with wxcrm's part in it.
//
// `sendCustomerAssignNotify`, which the CRM back end invokes over HTTP, is ours
// (assign-notify.js) and never reaches another function. Every other event type is the
// operator's: it goes, with its context, untouched to the function they already ran, kept
// beside ours as legacy/index.js (README: Deploying the cloud function), and its answer or its
// error comes back as it is. With no such function (a fresh deployment), getOpenId and
// getPhoneNumber are answered by identity.js, since the staff login needs them, and any other
// type by {success: false, error, code}.
//
// createRouter takes its loaders, which is how the tests run it with a stand-in SDK.

const fs = require('node:fs');
const path = require('node:path');
const { ASSIGN_NOTIFY, createHandler } = require('./assign-notify');
const { createIdentity } = require('./identity');

const LEGACY_FILE = path.join(__dirname, 'legacy', 'index.js');
const SDK_INIT_FAILED = {
  success: false,
  error: '云函数初始化失败：wx-server-sdk 未安装或无法加载（请以“云端安装依赖”方式部署）',
  code: 'SDK_INIT_FAILED',
};

// The entry point of a loaded module, however it was exported: `exports.main`,
// `module.exports = function`, or a transpiled ES module's `default` (or `default.main`).
function entryOf(mod) {
  const candidates = [mod && mod.main, mod && mod.default && mod.default.main, mod && mod.default, mod];
  const entry = candidates.find((candidate) => typeof candidate === 'function');
  if (!entry) throw new TypeError('legacy/index.js exports no main function (exports.main)');
  return entry;
}

// The operator's function in `file` (its entry point), loaded on first use; null when there is
// none. A file that fails to load throws, on every call, as the function itself would have.
function legacyLoader(file) {
  let entry;
  return function loadLegacy() {
    if (entry === undefined) {
      if (!fs.existsSync(file)) return null; // looked for again next time: a cold start is cheap
      entry = entryOf(require(file)); // a throw leaves nothing cached: the next call tries again
    }
    return entry;
  };
}

function createRouter(options) {
  const { loadSdk, loadLegacy } = options;
  const log = options.log || ((line) => console.log(line));
  let assignNotify;
  let identity;

  // Ours need the SDK; one that cannot be loaded is reported, never thrown.
  async function withSdk(run) {
    let cloud;
    try {
      cloud = loadSdk();
    } catch (err) {
      const line = { fn: 'quickstartFunctions', code: 'SDK_INIT_FAILED', errMsg: String(err && err.message) };
      console.error(JSON.stringify(line));
      return SDK_INIT_FAILED;
    }
    return run(cloud);
  }

  async function fallback(event, type) {
    let outcome;
    if (type === 'getOpenId' || type === 'getPhoneNumber') {
      outcome = await withSdk(async (cloud) => {
        identity = identity || createIdentity(cloud);
        return type === 'getOpenId' ? identity.getOpenId() : identity.getPhoneNumber(event);
      });
    } else {
      const shown = typeof type === 'string' ? type.slice(0, 64) : typeof type;
      outcome = { success: false, error: `未知的操作类型: ${shown}`, code: 'UNKNOWN_TYPE' };
    }
    const failed = outcome.success === false;
    try {
      log(JSON.stringify({ fn: 'quickstartFunctions', type: typeof type === 'string' ? type.slice(0, 64) : undefined,
        route: 'fallback', success: !failed, code: failed ? outcome.code : undefined }));
    } catch (err) {
      // a log sink that fails must not fail the call
    }
    return outcome;
  }

  // Not async: the operator's function is called as the runtime would call it, with whatever
  // the runtime passed, so what it returns (a value, a promise) or throws reaches the caller as
  // it is.
  return function main(event, context, ...rest) {
    const type = event !== null && typeof event === 'object' ? event.type : undefined;
    if (type === ASSIGN_NOTIFY) {
      return withSdk((cloud) => {
        assignNotify = assignNotify || createHandler(cloud);
        return assignNotify(event, context);
      });
    }
    const legacy = loadLegacy();
    if (legacy) return legacy(event, context, ...rest);
    return fallback(event, type);
  };
}

// ---------------------------------------------------------------------------------------------
// The deployed entry point
// ---------------------------------------------------------------------------------------------

let cloud;

// Initialised once, before the operator's function is loaded: if it calls cloud.init itself
// (as WeChat's template does, at load), its configuration is the one that stands for both.
function loadSdk() {
  if (!cloud) {
    const sdk = require('wx-server-sdk');
    sdk.init({ env: sdk.DYNAMIC_CURRENT_ENV });
    cloud = sdk;
  }
  return cloud;
}

const loadLegacy = legacyLoader(LEGACY_FILE);

// Both at load, in that order, as a function's top-level code runs at a cold start: whichever
// event comes first, ours and the operator's then share one SDK configuration. Failures here are
// met again, and answered, by the call that needs the part that failed.
try {
  loadSdk();
} catch (err) {
  // reported as SDK_INIT_FAILED by our first call; the operator's function loads it itself
}
try {
  loadLegacy();
} catch (err) {
  // thrown again by the operator's next call, as the function itself would throw it
}

exports.main = createRouter({ loadSdk, loadLegacy });

exports.createRouter = createRouter;
exports.legacyLoader = legacyLoader;
exports.LEGACY_FILE = LEGACY_FILE;
