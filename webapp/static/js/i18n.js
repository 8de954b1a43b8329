// i18n.js: the app's words, in Simplified Chinese with English after a
// slash, and the explanations of sync outcomes an inspector can act on.

export const HAZARD_STATUS = {
  reported: '已登记 Reported', confirmed: '已确认 Confirmed', notice_issued: '已下发整改通知 Notice issued', rectifying: '整改中 Rectifying',
  pending_verification: '待复查 Awaiting check', verified: '复查通过 Verified', closed: '已消号 Closed', rejected: '不成立 Rejected',
  duplicate: '重复 Duplicate', cancelled: '已撤销 Cancelled', escalated: '已上报 Escalated', '': '待同步 Not synced',
};
export const OPEN_HAZARD = new Set(['', 'reported', 'confirmed', 'notice_issued', 'rectifying', 'pending_verification', 'escalated']);
export const SEVERITY = { low: '一般 Low', medium: '较大 Medium', high: '重大 High' };
export const EVENT = {
  reported: '登记隐患', photo_added: '补充照片', note_added: '备注', confirmed: '督导室确认', rejected: '判定不成立', notice_issued: '下发整改通知',
  acknowledged: '学校签收', fixed_on_site: '现场整改', rectification_reported: '学校报告已整改', verification_passed: '复查通过',
  verification_failed: '复查未通过（仍存在）', escalated: '上报', deadline_changed: '调整期限', reclassified: '调整等级', closed: '消号',
  reopened: '重新打开', cancelled: '撤销', marked_duplicate: '标为重复',
};
export const PHASE = { push: '上传记录 Sending records', pull: '接收更新 Receiving updates', photos: '上传照片 Uploading photos' };

const CODES = {
  invalid: '内容未通过校验，请按提示修改后再保存。The record failed the checks: fix the fields named below.',
  forbidden: '没有权限：这所学校可能已不在您的责任区。Not allowed: the school may no longer be assigned to you.',
  unauthorized: '登记已失效，请向督导室要一个新的登记码。This phone\u2019s enrollment is no longer valid: ask the office for a new code.',
  not_found: '服务器上找不到这项内容。Not found on the server.',
  too_large: '内容太大，服务器不接收。Too large for the server.',
  op_reused: '这条修改需要重新发送，下次同步会自动处理。Will be sent again at the next sync.',
  unavailable: '服务器暂时不可用，稍后会自动重试，记录都保存在手机上。The server is busy; everything is kept on the phone and sent later.',
  stale: '需要重新接收全部数据，已自动处理。Starting the download over.',
  conflict: '与他人的修改冲突。In conflict with another edit.',
  offline: '没有网络。记录都保存在手机上，有网络时再同步。No network: everything is kept on this phone.',
  internal: '出现了问题，记录仍保存在手机上。Something went wrong; your records are still on this phone.',
};
export function explain(code) { return CODES[code] || CODES.internal; }

// fieldName names a field of a record for a person, from the form's
// labels when the form is known.
export function fieldName(key, labels) {
  const base = key.replace(/\[\d+\]/g, '').split('.');
  for (let i = base.length; i > 0; i--) {
    const k = base.slice(0, i).join('.');
    if (labels?.[k]) return labels[k] + (i < base.length ? ' · ' + base.slice(i).join('.') : '');
  }
  return key;
}

export function fmtDate(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}年${d.getMonth() + 1}月${d.getDate()}日 ${p(d.getHours())}:${p(d.getMinutes())}`;
}

export function fmtBytes(n) {
  if (n < 1024) return n + ' B';
  if (n < 1 << 20) return (n / 1024).toFixed(0) + ' KB';
  return (n / (1 << 20)).toFixed(1) + ' MB';
}

export function text(t) {
  if (!t) return '';
  if (typeof t === 'string') return t;
  return t.zh || t.en || '';
}
