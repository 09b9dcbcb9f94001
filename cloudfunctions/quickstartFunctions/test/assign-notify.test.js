'use strict';

// The handler run against a stand-in for wx-server-sdk: an object with the same shape
// (database().collection().doc().get(), openapi.subscribeMessage.send, getWXContext) that
// records every call. It lives in this file because `node --test test/` runs every .js file
// under test/ as a test file.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { createHandler } = require('../assign-notify.js');

const ADVISOR_ID = '65a1b2c3d4e5f60718293a4b';
const OPENID = 'oAbCd-advisor-openid-0001';
const TEMPLATE = 'tmpl-assign-0001';
const NOW = Date.parse('2025-12-24T02:30:00Z'); // 10:30 in Shanghai

function fakeCloud(options) {
  const opts = options || {};
  const users = opts.users || {};
  const calls = { database: 0, get: [], send: [] };
  const cloud = {
    DYNAMIC_CURRENT_ENV: Symbol('DYNAMIC_CURRENT_ENV'),
    init() {},
    getWXContext() {
      if (opts.contextThrows) throw new Error('getWXContext outside a function');
      return { OPENID: '', APPID: '', SOURCE: opts.source === undefined ? 'wx_http' : opts.source };
    },
    database() {
      calls.database += 1;
      if (opts.databaseThrows) throw opts.databaseThrows;
      return {
        collection(name) {
          return {
            doc(id) {
              return {
                async get() {
                  calls.get.push({ collection: name, id });
                  if (opts.getRejects) throw opts.getRejects;
                  if (name === 'users' && Object.prototype.hasOwnProperty.call(users, id)) {
                    return { data: { _id: id, ...users[id] }, errMsg: 'document.get:ok' };
                  }
                  // What the SDK does for a missing document: it rejects.
                  const err = new Error(
                    `document.get:fail document.get:fail cannot find document with _id ${id}, ` +
                      'please make sure that the document exists and you have the corresponding Read permission',
                  );
                  err.errCode = -1;
                  err.errMsg = err.message;
                  throw err;
                },
              };
            },
          };
        },
      };
    },
    openapi: {
      subscribeMessage: {
        async send(message) {
          calls.send.push(message);
          if (opts.send) return opts.send(message);
          return { errCode: 0, errMsg: 'openapi.subscribeMessage.send:ok', msgid: 3141592653 };
        },
      },
    },
  };
  return { cloud, calls };
}

function wechatError(errCode, errMsg) {
  const err = new Error(`errCode: ${errCode} | errMsg: ${errMsg}`);
  err.errCode = errCode;
  err.errMsg = errMsg;
  return err;
}

function setup(options) {
  const opts = options || {};
  const { cloud, calls } = fakeCloud(opts);
  const lines = [];
  const env = opts.env || { ASSIGN_TEMPLATE_ID: TEMPLATE };
  const main = createHandler(cloud, { env, log: (line) => lines.push(line), now: () => NOW });
  return { main, calls, lines };
}

function event(overrides) {
  return {
    type: 'sendCustomerAssignNotify',
    notificationData: {
      assignedToId: ADVISOR_ID,
      customerName: '张女士',
      source: '客户指定该顾问',
      assignerName: '李经理',
      customerId: '65a1b2c3d4e5f60718293aff',
      assignTime: '2025-12-24T02:30:00.000Z',
      customerPhone: '13812345678',
      serviceCategory: '月嫂',
      leadSource: '美团',
      ...overrides,
    },
  };
}

function assertFailure(result, code) {
  assert.equal(result.success, false);
  assert.equal(result.code, code);
  assert.equal(typeof result.error, 'string');
  assert.match(result.error, /\p{Script=Han}/u, 'the error is Chinese text');
  assert.match(result.code, /^[A-Z][A-Z_]*$/);
}

test('an openid in the event is used without a database lookup', async () => {
  const { main, calls } = setup();
  const result = await main(event({ assignedToOpenid: OPENID }), {});

  assert.deepEqual(result, { success: true, openid: OPENID, msgid: 3141592653 });
  assert.equal(calls.database, 0);
  assert.equal(calls.get.length, 0);
  assert.equal(calls.send.length, 1);
  assert.deepEqual(calls.send[0], {
    touser: OPENID,
    templateId: TEMPLATE,
    page: 'pages/customer/detail?id=65a1b2c3d4e5f60718293aff',
    miniprogramState: 'formal',
    lang: 'zh_CN',
    data: {
      thing1: { value: '张女士' },
      thing2: { value: '客户指定该顾问' },
      name3: { value: '李经理' },
      time4: { value: '2025-12-24 10:30' },
    },
  });
});

test('the openid is found in the users collection by assignedToId', async () => {
  const { main, calls } = setup({
    users: { [ADVISOR_ID]: { openid: OPENID, name: '王顾问', phone: '13900000000', role: 'advisor' } },
  });
  const result = await main(event(), {});

  // Only the openid and msgid come back, never the user document.
  assert.deepEqual(result, { success: true, openid: OPENID, msgid: 3141592653 });
  assert.deepEqual(calls.get, [{ collection: 'users', id: ADVISOR_ID }]);
  assert.equal(calls.send.length, 1);
  assert.equal(calls.send[0].touser, OPENID);
  assert.equal(calls.send[0].templateId, TEMPLATE);
});

test('a blank assignedToOpenid falls back to the lookup', async () => {
  const { main, calls } = setup({ users: { [ADVISOR_ID]: { openid: OPENID } } });
  const result = await main(event({ assignedToOpenid: '  ' }), {});
  assert.equal(result.success, true);
  assert.equal(calls.get.length, 1);
});

test('a user without an openid is a failure and nothing is sent', async () => {
  const { main, calls } = setup({ users: { [ADVISOR_ID]: { name: '王顾问', _openid: 'o-creator' } } });
  const result = await main(event(), {});
  assertFailure(result, 'USER_OPENID_MISSING');
  assert.equal(calls.send.length, 0, 'the record creator (_openid) is not the advisor');
});

test('a user that does not exist is a failure (doc().get() rejects)', async () => {
  const { main, calls } = setup({ users: {} });
  const result = await main(event(), {});
  assertFailure(result, 'USER_NOT_FOUND');
  assert.deepEqual(Object.keys(result).sort(), ['code', 'error', 'success']);
  assert.equal(calls.send.length, 0);
});

test('a missing users collection is reported as a lookup failure', async () => {
  const err = wechatError(-502005, 'database collection not exists');
  const { main, calls } = setup({ getRejects: err });
  const result = await main(event(), {});
  assertFailure(result, 'USER_LOOKUP_FAILED');
  assert.equal(result.errCode, -502005);
  assert.equal(calls.send.length, 0);
});

test('a database() that throws does not make the function throw', async () => {
  const { main } = setup({ databaseThrows: new Error('not initialised') });
  assertFailure(await main(event(), {}), 'USER_LOOKUP_FAILED');
});

test('an unknown or missing type is a failure', async () => {
  const { main, calls } = setup();
  const unknown = await main({ type: 'getOpenId' }, {});
  assertFailure(unknown, 'UNKNOWN_TYPE');
  assert.equal(unknown.error, '未知的操作类型: getOpenId');
  assertFailure(await main({}, {}), 'UNKNOWN_TYPE');
  assertFailure(await main(undefined, {}), 'UNKNOWN_TYPE');
  assertFailure(await main({ type: { nested: true } }, {}), 'UNKNOWN_TYPE');
  assert.equal(calls.send.length, 0);
});

test('missing notificationData or assignedToId is a failure', async () => {
  const { main, calls } = setup();
  for (const data of [undefined, null, 'text', ['a']]) {
    const result = await main({ type: 'sendCustomerAssignNotify', notificationData: data }, {});
    assertFailure(result, 'NOTIFICATION_DATA_MISSING');
  }
  for (const id of [undefined, '', '   ', 42]) {
    assertFailure(await main(event({ assignedToId: id }), {}), 'ASSIGNED_TO_MISSING');
  }
  assert.equal(calls.database, 0);
  assert.equal(calls.send.length, 0);
});

test('a WeChat error from send keeps errCode and errMsg', async () => {
  const errMsg = 'openapi.subscribeMessage.send:fail user refuse to accept the msg rid: 6789';
  const { main, calls } = setup({
    users: { [ADVISOR_ID]: { openid: OPENID } },
    send: () => {
      throw wechatError(43101, errMsg);
    },
  });
  const result = await main(event(), {});
  assertFailure(result, 'WECHAT_SEND_FAILED');
  assert.equal(result.errCode, 43101);
  assert.equal(result.errMsg, errMsg);
  assert.match(result.error, /43101/);
  assert.equal(calls.send.length, 1);
});

test('a permission error right after upload says what to do', async () => {
  const { main } = setup({
    send: () => {
      throw wechatError(-604101, 'function has no permission to call this API');
    },
  });
  const result = await main(event({ assignedToOpenid: OPENID }), {});
  assertFailure(result, 'WECHAT_SEND_FAILED');
  assert.equal(result.errCode, -604101);
  assert.match(result.error, /config\.json/);
});

test('a result with a non-zero errCode, or a send that throws a non-Error, is a failure', async () => {
  const refused = setup({ send: () => ({ errCode: 47003, errMsg: 'argument invalid! data.thing1.value invalid' }) });
  const result = await refused.main(event({ assignedToOpenid: OPENID }), {});
  assertFailure(result, 'WECHAT_SEND_FAILED');
  assert.equal(result.errCode, 47003);

  const odd = setup({
    send: () => {
      throw 'socket hang up'; // eslint-disable-line no-throw-literal
    },
  });
  const oddResult = await odd.main(event({ assignedToOpenid: OPENID }), {});
  assertFailure(oddResult, 'WECHAT_SEND_FAILED');
  assert.equal(oddResult.errMsg, 'socket hang up');
});

test('a missing template id is a failure before any lookup or send', async () => {
  for (const env of [{}, { ASSIGN_TEMPLATE_ID: '  ' }]) {
    const { main, calls } = setup({ env, users: { [ADVISOR_ID]: { openid: OPENID } } });
    const result = await main(event(), {});
    assertFailure(result, 'TEMPLATE_ID_MISSING');
    assert.match(result.error, /ASSIGN_TEMPLATE_ID/);
    assert.equal(calls.get.length, 0);
    assert.equal(calls.send.length, 0);
  }
});

test('field keys and the mini-program state come from environment variables', async () => {
  const { main, calls } = setup({
    env: {
      ASSIGN_TEMPLATE_ID: TEMPLATE,
      MINIPROGRAM_STATE: 'developer',
      ASSIGN_FIELD_CUSTOMER_NAME: 'thing5',
      ASSIGN_FIELD_REASON: 'thing7',
      ASSIGN_FIELD_ASSIGNER: 'name1',
      ASSIGN_FIELD_TIME: 'date2',
    },
  });
  const result = await main(event({ assignedToOpenid: OPENID }), {});
  assert.equal(result.success, true);
  assert.equal(calls.send[0].miniprogramState, 'developer');
  assert.deepEqual(calls.send[0].data, {
    thing5: { value: '张女士' },
    thing7: { value: '客户指定该顾问' },
    name1: { value: '李经理' },
    date2: { value: '2025-12-24 10:30' },
  });
});

test('a bad MINIPROGRAM_STATE or field key is a configuration failure', async () => {
  for (const extra of [
    { MINIPROGRAM_STATE: 'production' },
    { ASSIGN_FIELD_REASON: 'reason' },
    { ASSIGN_FIELD_REASON: 'thing1' }, // the same key as the customer name
  ]) {
    const { main, calls } = setup({ env: { ASSIGN_TEMPLATE_ID: TEMPLATE, ...extra } });
    assertFailure(await main(event({ assignedToOpenid: OPENID }), {}), 'CONFIG_INVALID');
    assert.equal(calls.send.length, 0);
  }
});

test('values are fitted to the keyword rules', async () => {
  const { main, calls } = setup();
  await main(
    event({
      assignedToOpenid: OPENID,
      customerName: '上海市浦东新区陆家嘴金融贸易区的张女士一家\n（VIP）',
      source: '   ',
      assignerName: '欧阳娜娜娜娜娜娜娜娜娜娜',
      assignTime: '2025-12-31T16:05:59Z',
      customerId: undefined,
    }),
    {},
  );
  const sent = calls.send[0];
  assert.equal(sent.page, 'pages/customer/detail');
  const { thing1, thing2, name3, time4 } = sent.data;
  assert.equal(Array.from(thing1.value).length, 20);
  assert.equal(thing1.value, '上海市浦东新区陆家嘴金融贸易区的张女士…');
  assert.equal(thing2.value, '手动分配', 'a blank reason gets the default');
  assert.equal(Array.from(name3.value).length, 10);
  assert.ok(name3.value.endsWith('…'));
  assert.equal(time4.value, '2026-01-01 00:05', 'the ISO time is shown in Shanghai time');

  await main(
    event({
      assignedToOpenid: OPENID,
      customerName: 'Ms\u0000 Zhang\u200b😀',
      assignerName: 'Alexandra Konstantinova',
      customerId: 'a b&c',
    }),
    {},
  );
  const second = calls.send[1];
  assert.equal(second.data.thing1.value, 'Ms Zhang');
  assert.equal(second.data.name3.value, 'Alexandra Konstanti…');
  assert.equal(Array.from(second.data.name3.value).length, 20);
  assert.equal(second.page, 'pages/customer/detail?id=a%20b%26c');
  for (const { value } of Object.values(second.data)) {
    assert.doesNotMatch(value, /[\u0000-\u001f\u007f]/);
  }
});

test('calls from the mini program itself are refused unless allowed', async () => {
  const client = setup({ source: 'wx_client' });
  assertFailure(await client.main(event({ assignedToOpenid: OPENID }), {}), 'FORBIDDEN_SOURCE');
  assert.equal(client.calls.send.length, 0);

  const allowed = setup({ source: 'wx_client', env: { ASSIGN_TEMPLATE_ID: TEMPLATE, ALLOW_CLIENT_CALLS: 'true' } });
  assert.equal((await allowed.main(event({ assignedToOpenid: OPENID }), {})).success, true);

  // Called by another cloud function that the mini program called: that function vouches.
  const chained = setup({ source: 'wx_client,scf' });
  assert.equal((await chained.main(event({ assignedToOpenid: OPENID }), {})).success, true);

  const noContext = setup({ contextThrows: true });
  assert.equal((await noContext.main(event({ assignedToOpenid: OPENID }), {})).success, true);
});

test('each call logs one line without the phone number or openid in full', async () => {
  const { main, lines } = setup({ users: { [ADVISOR_ID]: { openid: OPENID } } });
  await main(event(), {});
  await main({ type: 'nope' }, {});
  assert.equal(lines.length, 2);

  const first = JSON.parse(lines[0]);
  assert.equal(first.success, true);
  assert.equal(first.type, 'sendCustomerAssignNotify');
  assert.equal(first.source, 'wx_http');
  assert.equal(first.lookup, 'users');
  assert.equal(first.customerPhone, '138****5678');
  assert.equal(first.msgid, 3141592653);
  assert.ok(!lines[0].includes('13812345678'));
  assert.ok(!lines[0].includes(OPENID));

  const second = JSON.parse(lines[1]);
  assert.equal(second.success, false);
  assert.equal(second.code, 'UNKNOWN_TYPE');
});

test('a failing log sink does not fail the call', async () => {
  const { cloud } = fakeCloud();
  const main = createHandler(cloud, {
    env: { ASSIGN_TEMPLATE_ID: TEMPLATE },
    log: () => {
      throw new Error('disk full');
    },
  });
  assert.equal((await main(event({ assignedToOpenid: OPENID }), {})).success, true);
});
