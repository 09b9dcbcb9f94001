'use strict';

// The deployed function as an operator assembles it: our files, and the function they already
// ran copied into legacy/. Each test builds that folder in a temporary directory, with a stand-in
// for wx-server-sdk answering `require('wx-server-sdk')` (as in main.test.js), and calls the
// folder's exports.main as the cloud runtime would.

const { test, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const Module = require('node:module');
const path = require('node:path');

const FUNCTION_DIR = path.join(__dirname, '..');
const OUR_FILES = ['index.js', 'assign-notify.js', 'identity.js'];
const FAKE_PATH = path.join(__dirname, '__stand-in__', 'wx-server-sdk.js');
const originalResolve = Module._resolveFilename;

// What an operator's existing function might do: initialise the SDK for its own environment at
// load (as WeChat's template does), answer some types, fail in both ways a function can.
const LEGACY_SOURCE = `'use strict';
const cloud = require('wx-server-sdk');
cloud.init({ env: 'prod-7g8h' });
const seen = (globalThis.__legacyCalls = globalThis.__legacyCalls || []);
const examClosed = new Error('考试已结束');
exports.examClosed = examClosed;
exports.main = (event, context) => {
  seen.push({ event, context });
  switch (event.type) {
    case 'getOpenId': {
      const wx = cloud.getWXContext();
      return { openid: wx.OPENID, appid: wx.APPID, unionid: wx.UNIONID, from: 'legacy' };
    }
    case 'createPaymentOrder':
      return Promise.resolve({ success: true, data: { orderId: 'PAY-1', total_fee: event.amount } });
    case 'getExamQuestions':
      return { success: true, data: [{ id: 1, title: '婴儿抚触的正确顺序' }], total: 1 };
    case 'submitExam':
      return Promise.reject(examClosed);
    case 'importTestQuestions':
      throw new TypeError('questions must be an array');
    default:
      return { success: false, errMsg: 'legacy does not know ' + event.type };
  }
};
`;

let sdk;
let dirs = [];

function standInSdk() {
  const record = { init: [], send: [], phone: [], openData: [] };
  const DYNAMIC_CURRENT_ENV = Symbol('DYNAMIC_CURRENT_ENV');
  return {
    record,
    DYNAMIC_CURRENT_ENV,
    init(config) {
      record.init.push(config.env);
    },
    getWXContext: () => ({ OPENID: 'o-staff-li', APPID: 'wx0000000000000000', UNIONID: 'u-li', SOURCE: 'wx_http' }),
    getOpenData: async ({ list }) => {
      record.openData.push(list);
      return { list: [{ cloudID: list[0], data: { phoneNumber: '13800138000', purePhoneNumber: '13800138000', countryCode: '86' } }] };
    },
    openapi: {
      subscribeMessage: {
        send: async (message) => {
          record.send.push(message);
          return { errCode: 0, errMsg: 'openapi.subscribeMessage.send:ok', msgid: 7 };
        },
      },
      phonenumber: {
        getPhoneNumber: async ({ code }) => {
          record.phone.push(code);
          if (code === 'quota-code') return { errCode: 45011, errMsg: 'api minute-quota reach limit' };
          if (code === 'used-code') {
            const err = new Error('invalid code');
            err.errCode = 40029;
            err.errMsg = 'openapi.phonenumber.getPhoneNumber:fail invalid code';
            throw err;
          }
          return {
            errCode: 0,
            errMsg: 'openapi.phonenumber.getPhoneNumber:ok',
            phoneInfo: { phoneNumber: '+86 13800138000', purePhoneNumber: '13800138000', countryCode: '86' },
          };
        },
      },
    },
  };
}

// A deployment folder: our files, and legacy/index.js when `legacySource` is given (with the
// other files of `legacyFiles` beside it).
function deployment(legacySource, legacyFiles) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quickstartFunctions-'));
  dirs.push(dir);
  for (const file of OUR_FILES) fs.copyFileSync(path.join(FUNCTION_DIR, file), path.join(dir, file));
  if (legacySource !== undefined) {
    fs.mkdirSync(path.join(dir, 'legacy'));
    fs.writeFileSync(path.join(dir, 'legacy', 'index.js'), legacySource);
    for (const [name, source] of Object.entries(legacyFiles || {})) {
      fs.writeFileSync(path.join(dir, 'legacy', name), source);
    }
  }
  return {
    main: require(path.join(dir, 'index.js')).main,
    legacy: () => require(path.join(dir, 'legacy', 'index.js')),
  };
}

const ASSIGN_EVENT = {
  type: 'sendCustomerAssignNotify',
  notificationData: {
    assignedToId: '65a1b2c3d4e5f60718293a4b',
    assignedToOpenid: 'o-advisor',
    customerName: '张女士',
    source: '手动分配',
    assignerName: '李经理',
    customerId: '65a1b2c3d4e5f60718293aff',
    assignTime: '2025-12-24T02:30:00Z',
  },
};

beforeEach(() => {
  sdk = standInSdk();
  const mod = new Module(FAKE_PATH);
  mod.filename = FAKE_PATH;
  mod.loaded = true;
  mod.exports = sdk;
  require.cache[FAKE_PATH] = mod;
  Module._resolveFilename = function resolve(request, ...rest) {
    if (request === 'wx-server-sdk') return FAKE_PATH;
    return originalResolve.call(this, request, ...rest);
  };
  process.env.ASSIGN_TEMPLATE_ID = 'tmpl-assigned';
  globalThis.__legacyCalls = [];
});

afterEach(() => {
  Module._resolveFilename = originalResolve;
  delete require.cache[FAKE_PATH];
  for (const dir of dirs) {
    for (const key of Object.keys(require.cache)) if (key.startsWith(dir)) delete require.cache[key];
    fs.rmSync(dir, { recursive: true, force: true });
  }
  dirs = [];
  delete process.env.ASSIGN_TEMPLATE_ID;
  delete globalThis.__legacyCalls;
});

test('our assignment message is handled by us and never reaches the operator function', async () => {
  const { main } = deployment(LEGACY_SOURCE);
  const answer = await main(ASSIGN_EVENT, { requestId: 'r-1' });
  assert.deepEqual(answer, { success: true, openid: 'o-advisor', msgid: 7 });
  assert.equal(sdk.record.send.length, 1);
  assert.equal(sdk.record.send[0].templateId, 'tmpl-assigned');
  assert.deepEqual(globalThis.__legacyCalls, []);
});

test('every other type is answered by the operator function exactly as if called directly', async () => {
  const { main, legacy } = deployment(LEGACY_SOURCE);
  const events = [
    { type: 'getOpenId' },
    { type: 'createPaymentOrder', amount: 19900, description: '月嫂服务定金' },
    { type: 'getExamQuestions', examId: 'E1' },
    { type: 'saveSubscription', templateId: 't', status: 'accept' },
  ];
  for (const event of events) {
    const context = { requestId: `r-${event.type}` };
    const routed = await main(event, context);
    const direct = await legacy().main(event, context);
    assert.deepEqual(routed, direct, event.type);
    // The very objects the runtime gave: the event and the context, not copies.
    const [throughUs, itself] = globalThis.__legacyCalls.splice(0, 2);
    assert.equal(throughUs.event, event);
    assert.equal(throughUs.context, context);
    assert.equal(itself.event, event);
  }
  assert.equal((await main({ type: 'getOpenId' }, {})).from, 'legacy');
  // Our SDK start came first, so the operator's own cloud.init (its environment) stands.
  assert.deepEqual(sdk.record.init, [sdk.DYNAMIC_CURRENT_ENV, 'prod-7g8h']);
});

test('what the operator function throws reaches the caller untouched', async () => {
  const { main, legacy } = deployment(LEGACY_SOURCE);
  // Rejected: the same error object, not a wrapped or converted one.
  await assert.rejects(main({ type: 'submitExam', answers: [1, 2] }, {}), (err) => err === legacy().examClosed);
  // Thrown at once: thrown at once through us too, as the runtime would see it.
  assert.throws(() => main({ type: 'importTestQuestions', questions: 'x' }, {}), {
    name: 'TypeError',
    message: 'questions must be an array',
  });
  assert.equal(globalThis.__legacyCalls.length, 2);
});

test('an operator function that cannot load fails its own types, never ours', async () => {
  const { main } = deployment("'use strict';\nexports.main = async (event) => { return event.type\n");
  // Thrown at once, on every call (each tries the file again), as the function itself would.
  assert.throws(() => main({ type: 'getOpenId' }, {}), SyntaxError);
  assert.throws(() => main({ type: 'getOpenId' }, {}), SyntaxError);
  assert.deepEqual(await main(ASSIGN_EVENT, {}), { success: true, openid: 'o-advisor', msgid: 7 });
});

test('the operator function is found however it was exported, and gets all the runtime gave', async () => {
  const shapes = {
    'module.exports = function': "module.exports = async function main(event) { return { shape: 1, type: event.type }; };",
    'exports.default': "exports.default = async (event) => ({ shape: 2, type: event.type });",
    'exports.default.main': "exports.default = { main: async (event) => ({ shape: 3, type: event.type }) };",
    'a callback': "exports.main = (event, context, callback) => { callback(null, { shape: 4, type: event.type }); };",
  };
  for (const [name, source] of Object.entries(shapes)) {
    const { main } = deployment(`'use strict';\n${source}\n`);
    if (name === 'a callback') {
      const answer = await new Promise((resolve, reject) => {
        main({ type: 'getExamResult' }, {}, (err, value) => (err ? reject(err) : resolve(value)));
      });
      assert.deepEqual(answer, { shape: 4, type: 'getExamResult' }, name);
    } else {
      assert.equal((await main({ type: 'getExamResult' }, {})).type, 'getExamResult', name);
    }
  }
  const { main } = deployment("'use strict';\nexports.handler = () => 1;\n");
  assert.throws(() => main({ type: 'getExamResult' }, {}), /exports no main function/);
});

test('the operator function requires its own files as it did before', async () => {
  const { main } = deployment(
    "'use strict';\nconst { price } = require('./pricing');\nexports.main = async (event) => ({ success: true, total: price(event.hours) });\n",
    { 'pricing.js': 'exports.price = (hours) => hours * 45;\n' },
  );
  assert.deepEqual(await main({ type: 'createPaymentOrder', hours: 4 }, {}), { success: true, total: 180 });
});

test('whichever event comes first, ours and the operator function share one SDK setting', async () => {
  const { main } = deployment(LEGACY_SOURCE);
  // Ours first, on a cold start: the operator's cloud.init has run already, at load.
  assert.deepEqual(sdk.record.init, [sdk.DYNAMIC_CURRENT_ENV, 'prod-7g8h']);
  await main(ASSIGN_EVENT, {});
  await main({ type: 'getOpenId' }, {});
  assert.deepEqual(sdk.record.init, [sdk.DYNAMIC_CURRENT_ENV, 'prod-7g8h']);
});

test('a fresh deployment answers getPhoneNumber itself, for the staff login', async () => {
  const { main } = deployment();
  const answer = await main({ type: 'getPhoneNumber', code: 'phone-code-1' }, {});
  assert.deepEqual(answer, {
    success: true,
    data: { phoneNumber: '+86 13800138000', purePhoneNumber: '13800138000', countryCode: '86' },
  });
  assert.deepEqual(sdk.record.phone, ['phone-code-1']);
  // The older cloudID way of the same button.
  const older = await main({ type: 'getPhoneNumber', cloudID: 'cloud-id-1' }, {});
  assert.equal(older.success, true);
  assert.equal(older.data.purePhoneNumber, '13800138000');
  // A used code, and none at all: answered, not thrown.
  const used = await main({ type: 'getPhoneNumber', code: 'used-code' }, {});
  assert.equal(used.success, false);
  assert.equal(used.code, 'WECHAT_PHONE_FAILED');
  assert.equal(used.errCode, 40029);
  assert.match(used.error, /手机号授权码无效或已过期/);
  const limited = await main({ type: 'getPhoneNumber', code: 'quota-code' }, {});
  assert.deepEqual([limited.success, limited.errCode], [false, 45011]);
  // wx.cloud.CloudID(id) in the event: WeChat has opened it before the function runs.
  const opened = await main(
    { type: 'getPhoneNumber', cloudID: { cloudID: 'c-2', data: { phoneNumber: '13900139000', purePhoneNumber: '13900139000', countryCode: '86' } } },
    {},
  );
  assert.deepEqual(opened.data, { phoneNumber: '13900139000', purePhoneNumber: '13900139000', countryCode: '86' });
  const none = await main({ type: 'getPhoneNumber' }, {});
  assert.deepEqual([none.success, none.code], [false, 'PHONE_CODE_MISSING']);
});

test('a fresh deployment answers getOpenId itself, and unknown types as before', async () => {
  const { main } = deployment();
  assert.deepEqual(await main({ type: 'getOpenId' }, {}), {
    openid: 'o-staff-li',
    appid: 'wx0000000000000000',
    unionid: 'u-li',
  });
  const unknown = await main({ type: 'getExamResult' }, {});
  assert.deepEqual(unknown, { success: false, error: '未知的操作类型: getExamResult', code: 'UNKNOWN_TYPE' });
  assert.equal((await main(null, {})).code, 'UNKNOWN_TYPE');
  assert.deepEqual(sdk.record.init, [sdk.DYNAMIC_CURRENT_ENV]);
});

test('config.json asks for the permissions our part calls', () => {
  const config = JSON.parse(fs.readFileSync(path.join(FUNCTION_DIR, 'config.json'), 'utf8'));
  assert.deepEqual(config.permissions.openapi.sort(), ['phonenumber.getPhoneNumber', 'subscribeMessage.send']);
});
