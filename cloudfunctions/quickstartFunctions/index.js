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

// The operator's function in `file`, loaded on first use; null when there is none. A file
// that fails to load throws, on every call, as the function itself would have.
function legacyLoader(file) {
  let loaded;
  return function loadLegacy() {
    if (loaded === undefined) {
      if (!fs.existsSync(file)) return null; // looked for again next time: a cold start is cheap
      loaded = require(file); // a throw leaves nothing cached, so the next call tries again
    }
    return loaded;
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

  // Not async: the operator's function is called as the runtime would call it, so whatever it
  // returns (a value, a promise) or throws reaches the caller as it is.
  return function main(event, context) {
    const type = event !== null && typeof event === 'object' ? event.type : undefined;
    if (type === ASSIGN_NOTIFY) {
      return withSdk((cloud) => {
        assignNotify = assignNotify || createHandler(cloud);
        return assignNotify(event, context);
      });
    }
    const legacy = loadLegacy();
    if (legacy) return legacy.main(event, context);
    return fallback(event, type);
  };
}

// ---------------------------------------------------------------------------------------------
// The deployed entry point
// ---------------------------------------------------------------------------------------------

let cloud;

// Initialised once, before the operator's function is first loaded: if it calls cloud.init
// itself (as the WeChat template does, at load), its configuration is the one that stands.
function loadSdk() {
  if (!cloud) {
    const sdk = require('wx-server-sdk');
    sdk.init({ env: sdk.DYNAMIC_CURRENT_ENV });
    cloud = sdk;
  }
  return cloud;
}

const loadLegacyFile = legacyLoader(LEGACY_FILE);

exports.main = createRouter({
  loadSdk,
  loadLegacy() {
    try {
      loadSdk();
    } catch (err) {
      // the operator's function loads the SDK itself, and reports its own failure
    }
    return loadLegacyFile();
  },
});

exports.createRouter = createRouter;
exports.legacyLoader = legacyLoader;
exports.LEGACY_FILE = LEGACY_FILE;
