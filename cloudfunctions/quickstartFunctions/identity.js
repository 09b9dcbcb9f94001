'use strict';

// getOpenId and getPhoneNumber, for a deployment with no function of its own beside ours
// (legacy/index.js): the staff mini program logs in with the phone getPhoneNumber gives it.
// The answers have the shapes of the original function's, as the mini programs read them:
//   getOpenId      → {openid, appid, unionid}
//   getPhoneNumber → {success: true, data: {phoneNumber, purePhoneNumber, countryCode}}
//                    or {success: false, error, code[, errCode, errMsg]}

const PHONE_ERRORS = {
  40029: '手机号授权码无效或已过期，请重新授权',
  40013: '小程序 AppID 无效',
  '-604101': '云调用无权限：config.json 需声明 phonenumber.getPhoneNumber，上传后最长 10 分钟生效',
};

function nonBlank(value) {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : '';
}

function phoneFailure(err) {
  const errCode = err && err.errCode !== undefined ? err.errCode : undefined;
  const errMsg = String((err && (err.errMsg || err.message)) || err);
  const meaning = PHONE_ERRORS[errCode];
  return {
    success: false,
    error: meaning ? `获取手机号失败：${meaning}（${errCode}）` : '获取手机号失败',
    code: 'WECHAT_PHONE_FAILED',
    errCode,
    errMsg,
  };
}

function phoneData(info) {
  if (!info || !nonBlank(info.purePhoneNumber || info.phoneNumber)) return null;
  return {
    phoneNumber: String(info.phoneNumber || info.purePhoneNumber),
    purePhoneNumber: String(info.purePhoneNumber || info.phoneNumber),
    countryCode: String(info.countryCode || '86'),
  };
}

function createIdentity(cloud) {
  function getOpenId() {
    const context = cloud.getWXContext();
    return { openid: context.OPENID, appid: context.APPID, unionid: context.UNIONID };
  }

  // `code` from <button open-type="getPhoneNumber"> (WeChat's current way), or its older
  // `cloudID`: sent as `wx.cloud.CloudID(id)`, WeChat has already opened it into {cloudID, data};
  // sent as the bare string, the SDK opens it with getOpenData.
  async function getPhoneNumber(event) {
    const opened = event.cloudID !== null && typeof event.cloudID === 'object' ? event.cloudID : null;
    if (opened && opened.data) {
      const data = phoneData(opened.data);
      return data ? { success: true, data } : { success: false, error: '微信未返回手机号', code: 'WECHAT_PHONE_FAILED' };
    }
    const code = nonBlank(event.code);
    const cloudID = nonBlank(event.cloudID);
    if (!code && !cloudID) {
      return { success: false, error: '缺少手机号授权码 code', code: 'PHONE_CODE_MISSING' };
    }
    let info;
    try {
      if (code) {
        const result = await cloud.openapi.phonenumber.getPhoneNumber({ code });
        if (result && result.errCode !== undefined && result.errCode !== 0) return phoneFailure(result);
        info = result && result.phoneInfo;
      } else {
        const result = await cloud.getOpenData({ list: [cloudID] });
        const item = result && Array.isArray(result.list) ? result.list[0] : undefined;
        if (!item || item.errCode) return phoneFailure(item || {});
        info = item.data;
      }
    } catch (err) {
      return phoneFailure(err);
    }
    const data = phoneData(info);
    if (!data) return { success: false, error: '微信未返回手机号', code: 'WECHAT_PHONE_FAILED' };
    return { success: true, data };
  }

  return { getOpenId, getPhoneNumber };
}

module.exports = { createIdentity };
