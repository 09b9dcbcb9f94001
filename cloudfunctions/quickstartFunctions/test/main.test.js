'use strict';

// exports.main as deployed: `require('wx-server-sdk')` is answered by a stand-in module placed in
// Node's require cache under a made-up path, and Module._resolveFilename sends the name there,
// so no node_modules is needed (and a local one, if any, is never used by these tests).

const { test, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const Module = require('node:module');
const path = require('node:path');

const INDEX = require.resolve('../index.js');
const FAKE_PATH = path.join(__dirname, '__stand-in__', 'wx-server-sdk.js');
const originalResolve = Module._resolveFilename;

let sdk;

function standInSdk(options) {
  const opts = options || {};
  const record = { init: [], send: [] };
  const DYNAMIC_CURRENT_ENV = Symbol('DYNAMIC_CURRENT_ENV');
  return {
    record,
    DYNAMIC_CURRENT_ENV,
    init(config) {
      record.init.push(config);
      if (opts.initThrows) throw new Error('init failed');
    },
    getWXContext: () => ({ OPENID: '', SOURCE: 'wx_http' }),
    database: () => {
      throw new Error('no database in this test');
    },
    openapi: {
      subscribeMessage: {
        send: async (message) => {
          record.send.push(message);
          return { errCode: 0, errMsg: 'openapi.subscribeMessage.send:ok', msgid: 7 };
        },
      },
    },
  };
}

function install(stub) {
  sdk = stub;
  const mod = new Module(FAKE_PATH);
  mod.filename = FAKE_PATH;
  mod.loaded = true;
  mod.exports = stub;
  require.cache[FAKE_PATH] = mod;
  Module._resolveFilename = function resolve(request, ...rest) {
    if (request === 'wx-server-sdk') return FAKE_PATH;
    return originalResolve.call(this, request, ...rest);
  };
}

function freshIndex() {
  delete require.cache[INDEX];
  return require('../index.js');
}

const EVENT = {
  type: 'sendCustomerAssignNotify',
  notificationData: {
    assignedToId: '65a1b2c3d4e5f60718293a4b',
    assignedToOpenid: 'o-advisor',
    customerName: '3个客户',
    source: '批量分配',
    assignerName: '管理员',
    customerId: '65a1b2c3d4e5f60718293aff',
    assignTime: '2025-12-24T02:30:00Z',
  },
};

beforeEach(() => {
  process.env.ASSIGN_TEMPLATE_ID = 'tmpl-from-env';
  delete process.env.MINIPROGRAM_STATE;
});

afterEach(() => {
  Module._resolveFilename = originalResolve;
  delete require.cache[FAKE_PATH];
  delete require.cache[INDEX];
  delete process.env.ASSIGN_TEMPLATE_ID;
});

test('main loads wx-server-sdk once, initialises it for the current env and sends', async () => {
  install(standInSdk());
  const { main } = freshIndex();
  assert.equal(sdk.record.init.length, 1, 'at load, as a cold start runs top-level code');

  const first = await main(EVENT, {});
  const second = await main(EVENT, {});
  assert.deepEqual(first, { success: true, openid: 'o-advisor', msgid: 7 });
  assert.deepEqual(second, first);
  assert.equal(sdk.record.init.length, 1);
  assert.equal(sdk.record.init[0].env, sdk.DYNAMIC_CURRENT_ENV);
  assert.equal(sdk.record.send.length, 2);
  assert.equal(sdk.record.send[0].templateId, 'tmpl-from-env');
  assert.equal(sdk.record.send[0].page, 'pages/customer/detail?id=65a1b2c3d4e5f60718293aff');
});

test('main reads its environment variables on every call', async () => {
  install(standInSdk());
  const { main } = freshIndex();
  delete process.env.ASSIGN_TEMPLATE_ID;
  const missing = await main(EVENT, {});
  assert.equal(missing.code, 'TEMPLATE_ID_MISSING');
  process.env.ASSIGN_TEMPLATE_ID = 'tmpl-later';
  process.env.MINIPROGRAM_STATE = 'trial';
  const ok = await main(EVENT, {});
  assert.equal(ok.success, true);
  assert.equal(sdk.record.send[0].templateId, 'tmpl-later');
  assert.equal(sdk.record.send[0].miniprogramState, 'trial');
});

test('a failing SDK start is reported, not thrown, and retried on the next call', async () => {
  install(standInSdk({ initThrows: true }));
  const { main } = freshIndex();
  const result = await main(EVENT, {});
  assert.equal(result.success, false);
  assert.equal(result.code, 'SDK_INIT_FAILED');

  install(standInSdk());
  assert.equal((await main(EVENT, {})).success, true);
});
