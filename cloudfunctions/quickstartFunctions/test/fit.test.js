'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { fit } = require('../assign-notify.js');

const NOW = () => Date.parse('2025-06-01T00:00:00Z');

test('thing: at most 20 code points, cut with an ellipsis, default when blank', () => {
  assert.equal(fit.fitThing('短文本', '-'), '短文本');
  assert.equal(fit.fitThing('一二三四五六七八九十一二三四五六七八九十', '-').length, 20);
  const long = fit.fitThing('一二三四五六七八九十一二三四五六七八九十一', '-');
  assert.equal(long, '一二三四五六七八九十一二三四五六七八九…');
  // A character outside the BMP counts once and is never split.
  const rare = fit.fitThing('𠀀'.repeat(25), '-');
  assert.equal(Array.from(rare).length, 20);
  assert.equal(Array.from(rare)[18], '𠀀');
  assert.equal(fit.fitThing('', '-'), '-');
  assert.equal(fit.fitThing('\n\t ', '-'), '-');
  assert.equal(fit.fitThing(null, '-'), '-');
  assert.equal(fit.fitThing({ toString: () => 'x' }, '-'), '-');
  assert.equal(fit.fitThing(12345, '-'), '12345');
});

test('clean drops control, format and emoji characters and folds whitespace', () => {
  assert.equal(fit.clean('a\r\nb\tc'), 'a b c');
  assert.equal(fit.clean('\u0007张\u200d三\ufeff'), '张三');
  assert.equal(fit.clean('好评👍🏻！'), '好评！');
  assert.equal(fit.clean('🇨🇳 1️⃣号'), '1号');
  assert.equal(fit.clean('  many   spaces  '), 'many spaces');
});

test('name: 10 when it has Chinese, else 20', () => {
  assert.equal(fit.fitName('诸葛孔明', '-'), '诸葛孔明');
  assert.equal(fit.fitName('一二三四五六七八九十', '-'), '一二三四五六七八九十');
  assert.equal(fit.fitName('一二三四五六七八九十一', '-'), '一二三四五六七八九…');
  assert.equal(fit.fitName('Li 经理 Manager Wang', '-').length, 10);
  assert.equal(fit.fitName('Abcdefghij Klmnopqrst', '-'), 'Abcdefghij Klmnopqr…');
  assert.equal(fit.fitName('Abcdefghij Klmnopqrs', '-'), 'Abcdefghij Klmnopqrs');
  assert.equal(fit.fitName('', '-'), '-');
});

test('time: YYYY-MM-DD HH:MM in Shanghai', () => {
  assert.equal(fit.fitTime('2025-12-24T02:30:00.000Z', NOW), '2025-12-24 10:30');
  assert.equal(fit.fitTime('2025-12-24T10:30:00+08:00', NOW), '2025-12-24 10:30');
  assert.equal(fit.fitTime('2025-12-24T02:30:00+0000', NOW), '2025-12-24 10:30');
  assert.equal(fit.fitTime('2025-12-24T23:59:00-05:00', NOW), '2025-12-25 12:59');
  // Without a zone it is already Shanghai time.
  assert.equal(fit.fitTime('2025-12-24 10:30', NOW), '2025-12-24 10:30');
  assert.equal(fit.fitTime('2025-12-24T10:30:15.123', NOW), '2025-12-24 10:30');
  assert.equal(fit.fitTime(Date.parse('2025-12-24T02:30:00Z'), NOW), '2025-12-24 10:30');
  // Missing or unreadable: the time of sending.
  for (const bad of [undefined, '', 'yesterday', '2025-13-45T99:99:00Z', {}, NaN]) {
    assert.equal(fit.fitTime(bad, NOW), '2025-06-01 08:00', String(bad));
  }
});

test('fitField chooses the rule by the key prefix', () => {
  assert.equal(fit.fitField('thing9', '一二三四五六七八九十一二三四五六七八九十一', '-', NOW).length, 20);
  assert.equal(fit.fitField('name2', '一二三四五六七八九十一', '-', NOW).length, 10);
  assert.equal(fit.fitField('time8', '2025-12-24T02:30:00Z', '-', NOW), '2025-12-24 10:30');
  assert.equal(fit.fitField('date3', '2025-12-24T02:30:00Z', '-', NOW), '2025-12-24 10:30');
});

test('maskPhone keeps the first three and last four digits', () => {
  assert.equal(fit.maskPhone('13812345678'), '138****5678');
  assert.equal(fit.maskPhone('+86 138 1234 5678').endsWith('5678'), true);
  assert.ok(!fit.maskPhone('+86 138 1234 5678').includes('1234 '));
  assert.equal(fit.maskPhone('12345'), '*****');
  assert.equal(fit.maskPhone(undefined), undefined);
});
