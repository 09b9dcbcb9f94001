'use strict';

// sendCustomerAssignNotify: the "customer assigned to you" subscribe message to an advisor.
// index.js routes this event type here; every other type goes to the operator's own function.
//
// The CRM back end calls it over the HTTP API (POST /tcb/invokecloudfunction), so the call has
// no user context: getWXContext().OPENID is empty and the advisor's openid comes from the event
// (assignedToOpenid) or from the cloud `users` collection (assignedToId). The function answers
// {success: true, openid, msgid} or {success: false, error, code}; it never throws.
//
// createHandler(cloud) takes any object shaped like wx-server-sdk, which is how the tests run
// it without node_modules; index.js gives it the real SDK.

const ASSIGN_NOTIFY = 'sendCustomerAssignNotify';

const DEFAULT_FIELDS = {
  customerName: 'thing1',
  reason: 'thing2',
  assigner: 'name3',
  time: 'time4',
};

// Environment variables of the function (cloud console → 云函数 → 配置 → 环境变量).
const FIELD_ENV = {
  customerName: 'ASSIGN_FIELD_CUSTOMER_NAME',
  reason: 'ASSIGN_FIELD_REASON',
  assigner: 'ASSIGN_FIELD_ASSIGNER',
  time: 'ASSIGN_FIELD_TIME',
};

const STATES = ['developer', 'trial', 'formal'];
const DETAIL_PAGE = 'pages/customer/detail';

const THING_MAX = 20;
const NAME_CHINESE_MAX = 10;
const NAME_LATIN_MAX = 20;
const ELLIPSIS = '…';
const SHANGHAI_OFFSET_MS = 8 * 3600 * 1000; // China keeps +08:00, without daylight saving

// What WeChat's send errors mean, in the words an operator reading the back end's log needs.
const SEND_ERRORS = {
  43101: '顾问未订阅分配通知，或订阅次数已用完',
  40003: '顾问的 openid 无效或不属于本小程序',
  40037: '订阅消息模板 ID 无效',
  47003: '模板数据不符合字段类型要求',
  41030: '跳转页面不在小程序线上版本中',
  '-604101': '云调用无权限：config.json 需声明 subscribeMessage.send，上传后最长 10 分钟生效',
};

class Failure extends Error {
  constructor(code, error, extra) {
    super(error);
    this.code = code;
    this.extra = extra || {};
  }
}

// ---------------------------------------------------------------------------------------------
// Fitting values to WeChat's keyword rules (the back end fits them already; this is the backstop)
// ---------------------------------------------------------------------------------------------

// Controls, invisible format characters, private use, lone surrogates, and emoji with their
// modifiers (skin tones, flags, keycaps, variation selectors): WeChat refuses them (47003).
const DROPPED =
  /[\p{Cc}\p{Cf}\p{Co}\p{Cs}\p{Extended_Pictographic}\p{Emoji_Modifier}\p{Regional_Indicator}\u20E3\uFE00-\uFE0F]/gu;
const HAN = /\p{Script=Han}/u;

function clean(value) {
  if (value === null || value === undefined) return '';
  if (typeof value !== 'string' && typeof value !== 'number') return '';
  return String(value)
    .replace(/\s+/gu, ' ') // newlines and tabs become spaces before controls are dropped
    .replace(DROPPED, '')
    .replace(/ {2,}/g, ' ')
    .trim();
}

function cut(text, limit) {
  const chars = Array.from(text); // code points, so a rare character is never split in two
  if (chars.length <= limit) return text;
  return chars.slice(0, limit - 1).join('').trimEnd() + ELLIPSIS;
}

function fitThing(value, fallback) {
  return cut(clean(value) || fallback, THING_MAX);
}

function fitName(value, fallback) {
  const text = clean(value) || fallback;
  return cut(text, HAN.test(text) ? NAME_CHINESE_MAX : NAME_LATIN_MAX);
}

function pad(n) {
  return String(n).padStart(2, '0');
}

// `YYYY-MM-DD HH:MM` in Asia/Shanghai. An ISO time with a zone (`Z`, `+08:00`) or epoch
// milliseconds is converted; a zoneless `YYYY-MM-DD HH:MM` is taken as Shanghai time already;
// anything else (or nothing) means now.
function fitTime(value, now) {
  if (typeof value === 'string') {
    const text = value.trim();
    const local = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::\d{2}(?:\.\d+)?)?$/.exec(text);
    if (local) return `${local[1]}-${local[2]}-${local[3]} ${local[4]}:${local[5]}`;
    if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(text) && /(?:Z|[+-]\d{2}:?\d{2})$/i.test(text)) {
      const ms = Date.parse(text);
      if (!Number.isNaN(ms)) return formatShanghai(ms);
    }
  } else if (typeof value === 'number' && Number.isFinite(value)) {
    return formatShanghai(value);
  }
  return formatShanghai(now());
}

function formatShanghai(ms) {
  const d = new Date(ms + SHANGHAI_OFFSET_MS);
  return (
    `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`
  );
}

// By the key's type prefix, so a template whose keys differ (e.g. `thing5`, `date2`) still fits.
function fitField(key, value, fallback, now) {
  const type = /^([a-z_]+?)\d+$/.exec(key)[1];
  if (type === 'name') return fitName(value, fallback);
  if (type === 'time' || type === 'date') return fitTime(value, now);
  return fitThing(value, fallback);
}

// ---------------------------------------------------------------------------------------------
// Logging: one line per call, nothing that identifies a customer in full
// ---------------------------------------------------------------------------------------------

function maskPhone(phone) {
  const digits = clean(phone);
  if (!digits) return undefined;
  if (digits.length <= 7) return '*'.repeat(digits.length);
  return digits.slice(0, 3) + '****' + digits.slice(-4);
}

function maskOpenid(openid) {
  if (!openid) return undefined;
  return openid.length <= 8 ? '***' : `${openid.slice(0, 4)}***${openid.slice(-4)}`;
}

// ---------------------------------------------------------------------------------------------
// The handler
// ---------------------------------------------------------------------------------------------

function nonBlank(value) {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : '';
}

function readConfig(env) {
  const templateId = nonBlank(env.ASSIGN_TEMPLATE_ID);
  if (!templateId) {
    throw new Failure(
      'TEMPLATE_ID_MISSING',
      '未配置分配通知的订阅消息模板 ID：请在云函数环境变量中设置 ASSIGN_TEMPLATE_ID',
    );
  }
  const state = nonBlank(env.MINIPROGRAM_STATE) || 'formal';
  if (!STATES.includes(state)) {
    throw new Failure(
      'CONFIG_INVALID',
      `环境变量 MINIPROGRAM_STATE 只能是 developer、trial 或 formal，当前为 ${state}`,
    );
  }
  const fields = {};
  const used = new Set();
  for (const [name, variable] of Object.entries(FIELD_ENV)) {
    const key = nonBlank(env[variable]) || DEFAULT_FIELDS[name];
    if (!/^[a-z_]+\d+$/.test(key) || used.has(key)) {
      throw new Failure(
        'CONFIG_INVALID',
        `环境变量 ${variable} 应为不重复的模板字段名（关键词类型加序号，如 thing1），当前为 ${key}`,
      );
    }
    used.add(key);
    fields[name] = key;
  }
  return { templateId, state, fields };
}

// The call's source as getWXContext reports it; the last entry is the direct caller.
function directSource(cloud) {
  try {
    const source = cloud.getWXContext ? cloud.getWXContext().SOURCE : '';
    const hops = String(source || '').split(',');
    return hops[hops.length - 1].trim();
  } catch (err) {
    return '';
  }
}

function isTrue(value) {
  return ['1', 'true', 'yes'].includes(String(value || '').trim().toLowerCase());
}

function lookupError(err) {
  const message = String((err && (err.errMsg || err.message)) || err);
  const errCode = err && err.errCode !== undefined ? err.errCode : undefined;
  // A missing document makes doc().get() reject; a missing collection is a set-up problem.
  if (errCode !== -502005 && !/collection/i.test(message) &&
      /cannot find|not exist|does not exist|not found|不存在/i.test(message)) {
    return new Failure('USER_NOT_FOUND', '在云数据库 users 集合中找不到被分配的顾问');
  }
  return new Failure('USER_LOOKUP_FAILED', '查询云数据库 users 集合失败', { errCode, errMsg: message });
}

function sendError(err) {
  const errCode = err && err.errCode !== undefined ? err.errCode : undefined;
  const errMsg = String((err && (err.errMsg || err.message)) || err);
  const meaning = SEND_ERRORS[errCode];
  const error = meaning
    ? `发送订阅消息失败：${meaning}（${errCode}）`
    : `发送订阅消息失败${errCode !== undefined ? `（${errCode}）` : ''}`;
  return new Failure('WECHAT_SEND_FAILED', error, { errCode, errMsg });
}

function createHandler(cloud, options) {
  const opts = options || {};
  const env = opts.env || process.env;
  const log = opts.log || ((line) => console.log(line));
  const now = opts.now || Date.now;
  let db;

  async function findOpenid(assignedToId) {
    let doc;
    try {
      db = db || cloud.database();
      doc = await db.collection('users').doc(assignedToId).get();
    } catch (err) {
      throw lookupError(err);
    }
    if (!doc || !doc.data) {
      throw new Failure('USER_NOT_FOUND', '在云数据库 users 集合中找不到被分配的顾问');
    }
    const openid = nonBlank(doc.data.openid);
    if (!openid) {
      throw new Failure('USER_OPENID_MISSING', '被分配的顾问尚未绑定微信 openid（需先登录一次小程序）');
    }
    return openid;
  }

  async function assignNotify(event, record) {
    const data = event.notificationData;
    if (!data || typeof data !== 'object' || Array.isArray(data)) {
      throw new Failure('NOTIFICATION_DATA_MISSING', '缺少通知数据 notificationData');
    }
    const assignedToId = nonBlank(data.assignedToId);
    const givenOpenid = nonBlank(data.assignedToOpenid);
    record.assignedToId = assignedToId || undefined;
    record.customerId = nonBlank(data.customerId) || undefined;
    record.customerPhone = maskPhone(data.customerPhone);
    if (!assignedToId && !givenOpenid) {
      throw new Failure('ASSIGNED_TO_MISSING', '缺少被分配的顾问 assignedToId');
    }
    const config = readConfig(env);

    record.lookup = givenOpenid ? 'event' : 'users';
    const openid = givenOpenid || (await findOpenid(assignedToId));
    record.openid = maskOpenid(openid);

    const customerId = nonBlank(data.customerId);
    const { fields } = config;
    const message = {
      touser: openid,
      templateId: config.templateId,
      page: customerId ? `${DETAIL_PAGE}?id=${encodeURIComponent(customerId)}` : DETAIL_PAGE,
      miniprogramState: config.state,
      lang: 'zh_CN',
      data: {
        [fields.customerName]: { value: fitField(fields.customerName, data.customerName, '-', now) },
        [fields.reason]: { value: fitField(fields.reason, data.source, '手动分配', now) },
        [fields.assigner]: { value: fitField(fields.assigner, data.assignerName, '-', now) },
        [fields.time]: { value: fitField(fields.time, data.assignTime, '-', now) },
      },
    };

    let result;
    try {
      result = await cloud.openapi.subscribeMessage.send(message);
    } catch (err) {
      throw sendError(err);
    }
    // The SDK throws on a WeChat error; a non-zero errCode in a result is handled the same way.
    if (result && result.errCode !== undefined && result.errCode !== 0) throw sendError(result);
    const msgid = result && result.msgid !== undefined ? result.msgid : null;
    record.msgid = msgid;
    return { success: true, openid, msgid };
  }

  return async function main(event, context) {
    const started = now();
    const record = { fn: 'quickstartFunctions', type: undefined };
    let outcome;
    try {
      if (!event || typeof event !== 'object') {
        throw new Failure('UNKNOWN_TYPE', '未知的操作类型: undefined');
      }
      const type = event.type;
      record.type = typeof type === 'string' ? type.slice(0, 64) : type === undefined ? undefined : typeof type;
      record.source = directSource(cloud) || undefined;
      if (event.type !== ASSIGN_NOTIFY) {
        throw new Failure('UNKNOWN_TYPE', `未知的操作类型: ${record.type}`);
      }
      // A user of the mini program could call this function with a forged event and spend an
      // advisor's subscriptions; the back end calls it over HTTP (wx_http).
      if (record.source === 'wx_client' && !isTrue(env.ALLOW_CLIENT_CALLS)) {
        throw new Failure('FORBIDDEN_SOURCE', '分配通知只能由 CRM 后端调用，不接受小程序端直接调用');
      }
      outcome = await assignNotify(event, record);
    } catch (err) {
      const failure =
        err instanceof Failure ? err : new Failure('INTERNAL_ERROR', '云函数内部错误', {
          errMsg: String((err && err.message) || err),
        });
      outcome = { success: false, error: failure.message, code: failure.code };
      for (const [k, v] of Object.entries(failure.extra)) if (v !== undefined) outcome[k] = v;
    }
    record.success = outcome.success;
    if (!outcome.success) {
      record.code = outcome.code;
      if (outcome.errCode !== undefined) record.errCode = outcome.errCode;
    }
    record.ms = now() - started;
    try {
      log(JSON.stringify(record));
    } catch (err) {
      // a log sink that fails must not fail the call
    }
    return outcome;
  };
}

module.exports = { ASSIGN_NOTIFY, createHandler, fit: { clean, cut, fitThing, fitName, fitTime, fitField, maskPhone } };
