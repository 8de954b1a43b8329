// app.js: the inspector's app. Screens are plain functions of the route
// (location.hash) that draw into <main>; state lives in IndexedDB through
// the engine, so any screen can be reloaded, offline, at any moment.

import * as db from './db.js';
import * as core from './core.js';
import * as engine from './engine.js';
import { prepare } from './photo.js';
import { Form, el, valueAt, chinaISO } from './forms.js';
import { HAZARD_STATUS, OPEN_HAZARD, SEVERITY, EVENT, PHASE, explain, fieldName, fmtDate, fmtBytes, text } from './i18n.js';

const main = document.getElementById('main');
const T0 = performance.now();
export const marks = { shell: 0, firstScreen: 0 };
let builtins = null;

// ---------- start ----------

async function start() {
  marks.shell = performance.now() - T0;
  globalThis.fieldsync = { engine, db, core, marks, route };
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('sw.js', { scope: './' }).catch((e) => console.warn('service worker', e));
    navigator.serviceWorker.addEventListener('message', (e) => { if (e.data?.type === 'sync') autoSync(); });
  }
  navigator.storage?.persist?.().catch(() => {});
  window.addEventListener('online', () => { net(); autoSync(); });
  window.addEventListener('offline', net);
  window.addEventListener('fieldsync-reachable', net);
  window.addEventListener('hashchange', route);
  net();
  engine.http('GET', '/healthz').catch(() => {}); // is the server reachable? (the chip says)
  await route();
  marks.firstScreen = performance.now() - T0;
  document.documentElement.dataset.ready = '1';
  // The WebAssembly core starts once the first screen is up: starting Go
  // holds the main thread for a moment, and the lists do not need it.
  const later = globalThis.requestIdleCallback || ((f) => setTimeout(f, 200));
  later(() => core.load().catch((e) => console.error('core', e)), { timeout: 1500 });
}

function net() {
  const n = document.getElementById('net');
  const on = navigator.onLine && engine.serverReachable;
  n.textContent = on ? '在线 Online' : '离线 Offline';
  n.classList.toggle('off', !on);
}

async function autoSync() {
  if (!navigator.onLine || !(await db.getMeta('token'))) return;
  runSync(true).catch(() => {});
}

// askBackgroundSync asks the browser to wake the app when the network is
// back (Background Sync, where the browser has it).
async function askBackgroundSync() {
  try { (await navigator.serviceWorker?.ready)?.sync?.register('fieldsync'); } catch { /* not supported */ }
}

function params() {
  const [path, q] = location.hash.replace(/^#/, '').split('?');
  return { path: path || '/today', q: new URLSearchParams(q || '') };
}

async function route() {
  const { path, q } = params();
  for (const a of document.querySelectorAll('.tabs a')) a.classList.toggle('on', path.startsWith('/' + a.dataset.tab) || (a.dataset.tab === 'schools' && path.startsWith('/school')));
  const enrolled = !!(await db.getMeta('token'));
  document.getElementById('tabs').hidden = !enrolled;
  try {
    if (!enrolled || path === '/enroll') return await screenEnroll(q);
    await banner();
    const screens = { '/today': screenToday, '/schools': screenSchools, '/school': screenSchool, '/form': screenForm, '/hazard-new': screenHazardNew, '/hazard': screenHazard, '/sync': screenSync, '/storage': screenStorage };
    await (screens[path] || screenToday)(q);
    main.focus({ preventScroll: true });
  } catch (e) {
    console.error(e);
    if (e?.name === 'QuotaExceededError') { location.hash = '#/storage'; return; }
    draw(el('h2', {}, '出现了问题 Something went wrong'), el('p', {}, explain(e.code)), el('p', { class: 'muted' }, e.message));
  }
}

function draw(...kids) { main.replaceChildren(...kids.flat().filter(Boolean)); }
function go(hash) { if (location.hash === hash) route(); else location.hash = hash; }

function toast(msg, action) {
  document.querySelector('.toast')?.remove();
  const t = el('div', { class: 'toast', role: 'status' }, el('span', {}, msg));
  if (action) t.append(el('button', { type: 'button', onclick: () => { t.remove(); action.fn(); } }, action.label));
  document.body.append(t);
  setTimeout(() => t.remove(), action ? 6000 : 3500);
}

// banner always says what waits to be synced and when the last sync
// succeeded, and warns before storage runs out.
async function banner() {
  const st = await engine.status();
  const b = document.getElementById('banner');
  const waiting = st.outbox + st.photos;
  const last = st.lastSync;
  const ok = last && !last.error ? `上次同步 ${fmtDate(last.finished)}` : last ? `上次同步未完成 ${fmtDate(last.finished)}` : '尚未同步';
  b.replaceChildren(waiting ? el('span', {}, '待同步：', el('b', {}, `${st.outbox} 条记录`), '，', el('b', {}, `${st.photos} 张照片`), ` · ${ok}`) : el('span', {}, `✓ 全部已同步 · ${ok}`));
  const badge = document.getElementById('badge');
  badge.hidden = !(waiting + st.rejected);
  badge.textContent = String(waiting + st.rejected);
  const est = await db.estimate();
  if (est.quota && est.usage / est.quota > 0.9) b.append(el('a', { href: '#/storage', class: 'err' }, ' ⚠ 存储空间快满了 Storage almost full'));
  return st;
}

// ---------- data helpers ----------

const views = async () => (await db.all('records')).map((r) => r.view).filter((v) => v && !v.deleted);

// photoShas lists a record's photos by hash: those its events name, and
// those of the attachment records its photo fields name.
function photoShas(v, all) {
  const out = (v.photos || []).map((p) => p.sha256);
  for (const k of ['photo_ids', 'after_photo_ids', 'attachment_ids']) {
    for (const id of Array.isArray(v.values?.[k]) ? v.values[k] : []) {
      const a = all.find((x) => x.id === id);
      if (a?.values?.sha256) out.push(a.values.sha256);
    }
  }
  return [...new Set(out)];
}
const val = (v, k) => v?.values?.[k];

async function forms() {
  if (!builtins) builtins = await core.call('forms', {});
  const published = (await views()).filter((v) => v.kind === 'form' && val(v, 'status') !== 'retired').map((v) => val(v, 'definition')).filter(Boolean);
  return [...builtins, ...published];
}
async function formDef(id, version) { return (await forms()).find((d) => d.id === id && d.version === version); }

async function thumbURL(sha) {
  const b = await db.get('thumbs', sha);
  return b ? URL.createObjectURL(b) : null;
}

async function photoTiles(shas) {
  const out = [];
  for (const sha of shas.slice(0, 4)) {
    const u = await thumbURL(sha);
    out.push(u ? el('img', { src: u, alt: '隐患照片 hazard photo' }) : el('div', { class: 'nophoto' }, '未下载', el('br'), 'not here'));
  }
  return out;
}

function statusChip(h) {
  const s = h?.status ?? '';
  const cls = h?.overdue ? 'overdue' : OPEN_HAZARD.has(s) ? 'open' : 'done';
  return el('span', { class: 'status ' + cls }, h?.overdue ? '⏰ 已逾期 Overdue · ' : OPEN_HAZARD.has(s) ? '● ' : '✓ ', HAZARD_STATUS[s] || s);
}

// ---------- enroll ----------

async function screenEnroll(q) {
  const code = el('input', { type: 'text', id: 'code', autocomplete: 'one-time-code', autocapitalize: 'characters', placeholder: '例如 7KQ2-M9XD-4TWA', value: q.get('code') || '' });
  const name = el('input', { type: 'text', id: 'devname', value: '我的手机' });
  const msg = el('div', { class: 'err', role: 'alert' });
  const btn = el('button', { type: 'submit', class: 'primary wide' }, '登记这部手机 Enroll this phone');
  const form = el('form', { onsubmit: async (e) => {
    e.preventDefault();
    btn.disabled = true; msg.textContent = '';
    try {
      await engine.enroll(code.value, name.value || 'phone');
      toast('登记成功，正在接收学校资料… Enrolled');
      location.hash = '#/today';
      runSync().catch(() => {});
    } catch (err) {
      msg.textContent = err instanceof TypeError ? explain('offline') : (err.code === 'not_found' || err.code === 'invalid' || err.code === 'forbidden' || err.code === 'unauthorized' ? '登记码无效或已用过，请向督导室要一个新的。The code is not valid or was used: ask the office for a new one.' : explain(err.code)) + (err.message ? ` (${err.message})` : '');
    } finally { btn.disabled = false; }
  } },
  el('label', { class: 'field', for: 'code' }, el('span', { class: 'l req' }, '登记码 Enrollment code'), code, el('p', { class: 'hint' }, '督导室在电脑上显示的登记码，或扫描二维码直接打开。The code the office console shows, or scan its QR code.')),
  el('label', { class: 'field', for: 'devname' }, el('span', { class: 'l' }, '手机名称 Device name'), name), msg, btn);
  draw(el('h2', {}, '登记手机 Enroll'), el('p', {}, '第一次使用时需要连接督导室的网络。之后在没有信号的学校也能工作。'), form);
}

// ---------- today ----------

async function screenToday() {
  const all = await views();
  const me = await db.getMeta('author');
  const schools = new Map(all.filter((v) => v.kind === 'school').map((v) => [v.id, v]));
  const sname = (id) => val(schools.get(id), 'name') || '学校';
  const visits = all.filter((v) => v.kind === 'visit' && val(v, 'status') === 'in_progress');
  const notices = all.filter((v) => ['rectification_notice', 'follow_up_task', 'review_comment'].includes(v.kind) || v.items?.comments?.length);
  const hz = all.filter((v) => v.kind === 'hazard' && OPEN_HAZARD.has(v.hazard?.status ?? ''));
  const due = hz.filter((v) => v.hazard?.overdue || v.hazard?.status === 'pending_verification');
  draw(
    el('h2', {}, '今日 Today'),
    visits.length ? el('h3', {}, '进行中的进校 Visits in progress') : null,
    ...visits.map((v) => el('a', { class: 'card', href: `#/form?form=${v.form_id}&v=${v.form_version}&record=${v.id}` }, el('h3', {}, sname(v.school_id)), el('p', { class: 'muted' }, '进校 ' + fmtDate(val(v, 'check_in_at'))))),
    el('h3', {}, '需要跟进的隐患 Hazards to follow up'),
    due.length ? due.map((v) => hazardCard(v, sname(v.school_id), all)) : el('p', { class: 'muted' }, '没有待复查或逾期的隐患。None due.'),
    el('h3', {}, '督导室的通知与意见 Notices and comments'),
    notices.length ? notices.map((v) => el('div', { class: 'card' }, el('h3', {}, val(v, 'title') || val(v, 'notice_no') || text({ zh: '通知' })), el('p', {}, val(v, 'content') || val(v, 'description') || val(v, 'summary') || ''), el('p', { class: 'muted' }, sname(v.school_id)))) : el('p', { class: 'muted' }, '暂无。None.'),
    el('a', { class: 'btn primary wide', href: '#/schools' }, '🏫 选择学校开始进校 Choose a school'),
    me ? null : null,
  );
  for (const img of main.querySelectorAll('img[data-sha]')) img.src = (await thumbURL(img.dataset.sha)) || '';
}

function hazardCard(v, school, all = []) {
  const card = el('a', { class: 'card', href: `#/hazard?id=${v.id}` }, el('h3', {}, val(v, 'title') || '隐患'), el('div', { class: 'row' }, statusChip(v.hazard), el('span', { class: 'status ' + (val(v, 'severity') === 'high' ? 'high' : '') }, SEVERITY[val(v, 'severity')] || '')),
    el('p', { class: 'muted' }, [school, val(v, 'location_desc'), v.hazard?.deadline ? '期限 ' + v.hazard.deadline : ''].filter(Boolean).join(' · ')));
  const thumbs = el('div', { class: 'thumbs' });
  card.append(thumbs);
  photoTiles(photoShas(v, all)).then((t) => thumbs.append(...t));
  return card;
}

// ---------- schools ----------

async function screenSchools() {
  const all = await views();
  const schools = all.filter((v) => v.kind === 'school');
  const list = el('div');
  for (const s of schools) {
    const hz = all.filter((v) => v.kind === 'hazard' && v.school_id === s.id && OPEN_HAZARD.has(v.hazard?.status ?? ''));
    const last = all.filter((v) => v.kind === 'visit' && v.school_id === s.id).map((v) => val(v, 'visit_date')).filter(Boolean).sort().pop();
    const thumbs = el('div', { class: 'thumbs' });
    photoTiles(hz.flatMap((v) => photoShas(v, all))).then((t) => thumbs.append(...t));
    list.append(el('a', { class: 'card', href: `#/school?id=${s.id}` }, el('h3', {}, val(s, 'name') || s.id),
      el('p', {}, hz.length ? el('span', { class: 'status open' }, `● ${hz.length} 项隐患未销号 open hazards`) : el('span', { class: 'status done' }, '✓ 无未销号隐患'), ' ', el('span', { class: 'muted' }, last ? `上次进校 ${last}` : '尚无进校记录')), thumbs));
  }
  draw(el('h2', {}, '我的学校 My schools'), schools.length ? list : el('p', { class: 'muted' }, '还没有收到学校资料。请在有网络时同步。No schools yet: sync when online.'));
}

async function screenSchool(q) {
  const id = q.get('id');
  const all = await views();
  const s = all.find((v) => v.id === id);
  const hz = all.filter((v) => v.kind === 'hazard' && v.school_id === id);
  const visits = all.filter((v) => v.kind === 'visit' && v.school_id === id).sort((a, b) => String(val(b, 'visit_date')).localeCompare(String(val(a, 'visit_date'))));
  const open = visits.find((v) => val(v, 'status') === 'in_progress');
  const qforms = (await forms()).filter((d) => d.kind === 'questionnaire_response');
  draw(
    el('h2', {}, val(s, 'name') || '学校'),
    el('p', { class: 'muted' }, [val(s, 'address'), val(s, 'principal_name') ? '校长 ' + val(s, 'principal_name') : ''].filter(Boolean).join(' · ')),
    open ? el('a', { class: 'btn primary wide', href: `#/form?form=${open.form_id}&v=${open.form_version}&record=${open.id}` }, '继续进校记录 Continue the visit')
      : el('button', { type: 'button', class: 'primary wide', onclick: () => startVisit(id).catch((e) => toast(explain(e.code) + ' ' + Object.values(e.fields || {}).join('；'))) }, '🕗 开始进校（记录进校时间）Check in'),
    el('div', { class: 'row' },
      el('a', { class: 'btn', href: `#/form?form=lesson_observation&v=1&school=${id}${open ? '&visit=' + open.id : ''}` }, '听课评课 Lesson'),
      el('a', { class: 'btn', href: `#/hazard-new?school=${id}${open ? '&visit=' + open.id : ''}` }, '📷 报告隐患 Hazard')),
    el('h3', {}, '问卷 Questionnaires'),
    ...qforms.map((d) => el('a', { class: 'btn wide', href: `#/form?form=${encodeURIComponent(d.id)}&v=${d.version}&school=${id}${open ? '&visit=' + open.id : ''}` }, text(d.title) || d.id)),
    el('h3', {}, '隐患 Hazards'),
    hz.length ? hz.map((v) => hazardCard(v, '', all)) : el('p', { class: 'muted' }, '没有隐患记录。None.'),
    el('h3', {}, '进校记录 Visits'),
    visits.length ? visits.map((v) => el('a', { class: 'card', href: `#/form?form=${v.form_id}&v=${v.form_version}&record=${v.id}` }, `${val(v, 'visit_date') || ''} · ${val(v, 'status') === 'completed' ? '已完成' : val(v, 'status') === 'in_progress' ? '进行中' : val(v, 'status') || ''}`)) : el('p', { class: 'muted' }, '没有进校记录。None.'),
  );
}

function localISO(d = engine.now()) { return chinaISO(d); }
function localDate(d = engine.now()) { return new Date(d.getTime() + 8 * 3600e3).toISOString().slice(0, 10); }

async function startVisit(schoolId) {
  const insp = await db.getMeta('inspector');
  const out = await engine.save({ kind: 'visit', school_id: schoolId, form_id: 'visit.routine', form_version: 1, values: {
    school_id: schoolId, kind: 'routine', announced: true, lead_inspector_id: insp, visit_date: localDate(), check_in_at: localISO(), status: 'in_progress',
  } });
  toast('已记录进校时间 ' + fmtDate(val(out.view, 'check_in_at')));
  go(`#/form?form=visit.routine&v=1&record=${out.view.id}`);
}

// ---------- forms ----------

// The county's classroom rubric (C1–C6, 100 points) that the built-in
// lesson observation form scores against.
const COUNTY_RUBRIC = '0192b000-0000-7000-8000-0000000005f1';
const AUTO = new Set(['school_id', 'lead_inspector_id', 'observer_id', 'collector_id', 'template_id', 'template_version', 'visit_id', 'found_in_visit_id', 'rubric', 'status']);

async function screenForm(q) {
  const def = await formDef(q.get('form'), Number(q.get('v')));
  if (!def) return draw(el('h2', {}, '找不到表单 Form not found'), el('p', {}, q.get('form')));
  const recordId = q.get('record');
  const rec = recordId ? (await db.get('records', recordId))?.view : null;
  const schoolId = rec?.school_id || q.get('school');
  const draftKey = 'form:' + (recordId || `${def.id}@${def.version}:${schoolId}`);
  const saved = await db.get('drafts', draftKey);
  const insp = await db.getMeta('inspector');
  const author = await db.getMeta('author');
  let values;
  if (saved) values = saved.values;
  else if (rec) values = structuredClone(rec.values);
  else {
    values = { school_id: schoolId };
    for (const f of def.fields) if (f.default !== undefined && f.origin !== 'server') values[f.key] = structuredClone(f.default);
    if (def.kind === 'lesson_observation') Object.assign(values, { observer_id: author || insp, started_at: localISO(), duration_min: 40, status: 'draft', rubric: { id: COUNTY_RUBRIC, version: 2 } });
    if (def.kind === 'questionnaire_response') Object.assign(values, { template_id: def.id, template_version: def.version, collector_id: author || insp, collected_at: localISO(), respondent_type: 'student', collection_mode: 'self_on_device', answers: [] });
    if (q.get('visit')) values.visit_id = q.get('visit');
    if (!def.fields.some((f) => f.key === 'rubric')) delete values.rubric;
    for (const k of Object.keys(values)) if (!def.fields.some((f) => f.key === k)) delete values[k];
  }
  const summary = el('div', { role: 'alert' });
  const live = def.kind === 'lesson_observation' ? el('div', { class: 'live', 'aria-live': 'polite' }) : null;
  let timer = null;
  const evaluate = async () => {
    const ev = await core.call('evaluate', { form_id: def.id, form_version: def.version, definition: def, values, now: engine.now().toISOString() });
    form.update(ev);
    if (live) {
      const tot = valueAt(ev.Values, 'total_score');
      live.textContent = `总分 Total：${tot ?? '—'}　等级 Band：${valueAt(ev.Values, 'grade_band') || '—'}`;
    }
    return ev;
  };
  const form = new Form(def, values, { hide: AUTO, onChange: () => {
    db.put('drafts', draftKey, { values, updated_at: Date.now() }); // every field is kept at once
    clearTimeout(timer); timer = setTimeout(evaluate, 120);
  } });
  const submit = async (extra = {}) => {
    Object.assign(values, extra);
    const ev = await evaluate();
    const errs = ev.Errors || {};
    if (Object.keys(errs).length) {
      form.showAll = true; form.update(ev);
      summary.replaceChildren(el('div', { class: 'summary' }, el('b', {}, `有 ${Object.keys(errs).length} 处需要修改 Fix ${Object.keys(errs).length} field(s)`),
        el('ul', {}, ...Object.entries(errs).map(([k, t]) => el('li', {}, el('a', { href: '#', onclick: (e) => { e.preventDefault(); document.getElementById('f-' + k)?.scrollIntoView({ block: 'center' }); } }, `${fieldName(k, form.labels)}：${text(t)}`))))));
      summary.scrollIntoView();
      return false;
    }
    try {
      const out = await engine.save({ id: recordId || undefined, kind: def.kind, school_id: schoolId, form_id: def.id, form_version: def.version, values: ev.Values });
      await db.del('drafts', draftKey);
      toast('已保存，等待同步 Saved on the phone');
      askBackgroundSync();
      if (navigator.onLine) autoSync();
      go(schoolId ? `#/school?id=${schoolId}` : '#/today');
      return out;
    } catch (e) {
      summary.replaceChildren(el('div', { class: 'summary' }, el('b', {}, explain(e.code)), el('ul', {}, ...Object.entries(e.fields || {}).map(([k, m]) => el('li', {}, `${fieldName(k, form.labels)}：${m}`)))));
      summary.scrollIntoView();
      return false;
    }
  };
  const actions = el('div', {});
  if (def.kind === 'visit') {
    actions.append(el('button', { type: 'button', class: 'wide', onclick: () => submit() }, '保存 Save'),
      el('button', { type: 'button', class: 'primary wide', onclick: () => submit({ status: 'completed', check_out_at: localISO() }) }, '✓ 完成进校（记录离校时间）Finish the visit'));
  } else if (def.kind === 'lesson_observation') {
    actions.append(el('button', { type: 'button', class: 'wide', onclick: () => submit() }, '保存草稿 Save draft'),
      el('button', { type: 'button', class: 'primary wide', onclick: () => submit({ status: 'submitted' }) }, '✓ 提交听课记录 Submit'));
  } else {
    actions.append(el('button', { type: 'button', class: 'primary wide', onclick: () => submit() }, '✓ 保存 Save'));
  }
  const discard = saved ? el('button', { type: 'button', class: 'danger wide', onclick: async () => {
    const keep = await db.get('drafts', draftKey);
    await db.del('drafts', draftKey);
    route();
    toast('已放弃未保存的修改 Draft discarded', { label: '撤销 Undo', fn: async () => { await db.put('drafts', draftKey, keep); route(); } });
  } }, '放弃未保存的修改 Discard draft') : null;
  draw(el('h2', {}, text(def.title)), saved ? el('p', { class: 'muted' }, '已恢复上次未保存的填写。Your unsaved answers were restored.') : null, live, summary, form.root, actions, discard);
  evaluate();
}

// ---------- hazards ----------

const HAZARD_HIDE = new Set([...AUTO, 'photo_ids', 'after_photo_ids']);

async function screenHazardNew(q) {
  const schoolId = q.get('school');
  const def = await formDef('hazard.report', 1);
  const draftKey = 'hazard:' + schoolId;
  const saved = (await db.get('drafts', draftKey)) || { values: { school_id: schoolId, source: 'inspector_visit', severity: 'medium' }, photos: [] };
  if (q.get('visit')) saved.values.found_in_visit_id = q.get('visit');
  const keep = () => db.put('drafts', draftKey, saved);
  const tiles = el('div', { class: 'thumbs' });
  const showTiles = () => tiles.replaceChildren(...saved.photos.map((ph) => el('img', { src: URL.createObjectURL(ph.thumb), alt: '刚拍的照片 photo taken' })));
  const file = el('input', { type: 'file', accept: 'image/*', capture: 'environment', id: 'camera', onchange: async () => {
    for (const f of file.files) {
      const ph = await prepare(f);
      saved.photos.push(ph);
    }
    file.value = '';
    await keep(); showTiles(); form.changed('photo_ids');
  } });
  const summary = el('div', { role: 'alert' });
  let timer;
  const evaluate = async () => {
    const values = { ...saved.values, photo_ids: saved.photos.map((_, i) => `00000000-0000-7000-8000-${String(i).padStart(12, '0')}`) };
    if (!saved.photos.length) delete values.photo_ids;
    const ev = await core.call('evaluate', { form_id: def.id, form_version: 1, values, now: engine.now().toISOString() });
    form.update(ev);
    return ev;
  };
  const form = new Form(def, saved.values, { hide: HAZARD_HIDE, onChange: () => { keep(); clearTimeout(timer); timer = setTimeout(evaluate, 120); } });
  const submit = async () => {
    const ev = await evaluate();
    const errs = { ...(ev.Errors || {}) };
    if (!saved.photos.length) errs.photo_ids = { zh: '请先拍摄至少一张隐患照片', en: 'take at least one photo' };
    if (Object.keys(errs).length) {
      form.showAll = true; form.update(ev);
      summary.replaceChildren(el('div', { class: 'summary' }, el('b', {}, '请补全以下内容 Please complete'), el('ul', {}, ...Object.entries(errs).map(([k, t]) => el('li', {}, `${k === 'photo_ids' ? '照片' : fieldName(k, form.labels)}：${text(t)}`)))));
      summary.scrollIntoView();
      return;
    }
    const id = engine.uuid7();
    const atts = [];
    for (const ph of saved.photos) atts.push(await engine.newAttachment('hazard', id, schoolId, ph.blob, ph.thumb, { ...ph.meta, phase: 'before' }));
    const values = { ...ev.Values, photo_ids: atts.map((a) => a.id) };
    try {
      await engine.save({ id, kind: 'hazard', school_id: schoolId, form_id: 'hazard.report', form_version: 1, values });
      await engine.append(id, 'events', { type: 'reported', occurred_at: localISO(), actor_id: await db.getMeta('author'), actor_role: 'inspector', base_rev: 0, photo_ids: atts.map((a) => a.id), visit_id: saved.values.found_in_visit_id });
    } catch (e) {
      summary.replaceChildren(el('div', { class: 'summary' }, explain(e.code), ' ', JSON.stringify(e.fields || {})));
      return;
    }
    await db.del('drafts', draftKey);
    toast('隐患已登记，等待同步 Hazard saved on the phone');
    askBackgroundSync();
    if (navigator.onLine) autoSync();
    go(`#/hazard?id=${id}`);
  };
  draw(el('h2', {}, '报告安全隐患 Report a hazard'),
    el('label', { class: 'shutter', for: 'camera' }, el('span', { 'aria-hidden': 'true', style: 'font-size:40px' }, '📷'), '拍摄隐患照片 Take a photo', file),
    tiles, el('p', { class: 'hint' }, '照片在手机上压缩到 1600 像素以内，拍摄时间和位置记入记录。Photos are reduced to 1600 px; their time and place are kept.'),
    summary, form.root, el('button', { type: 'button', class: 'primary wide', onclick: submit }, '✓ 登记隐患 Save the hazard'));
  showTiles();
  evaluate();
}

async function screenHazard(q) {
  const id = q.get('id');
  const r = await db.get('records', id);
  if (!r) return draw(el('h2', {}, '找不到隐患 Not found'));
  const v = r.view; const h = v.hazard || {};
  const all = await views();
  const school = all.find((x) => x.id === v.school_id);
  const items = Object.fromEntries((v.items?.events || []).map((it) => [it.id, it]));
  const shas = photoShas(v, all);
  const note = el('textarea', { id: 'note', rows: 2 });
  const file = el('input', { type: 'file', accept: 'image/*', capture: 'environment', id: 'followup' });
  const follow = async (type, phase) => {
    const photos = [];
    for (const f of file.files) {
      const ph = await prepare(f);
      const ref = await engine.queuePhoto(ph.blob, ph.thumb);
      photos.push({ sha256: ref.sha256, phase });
    }
    if (type === 'verification_failed' && !note.value.trim()) { toast('请写明仍存在的情况 Describe what you saw'); note.focus(); return; }
    if (type === 'photo_added' && !photos.length) { toast('请先拍照 Take a photo first'); return; }
    if (type === 'verification_passed' && !photos.length && !note.value.trim()) { toast('请拍摄整改后照片或写明情况 Add an after photo or a note'); return; }
    const data = { type, occurred_at: localISO(), actor_id: await db.getMeta('author'), actor_role: 'inspector', base_rev: v.rev || 0 };
    if (photos.length) data.photos = photos;
    if (note.value.trim()) data.note = note.value.trim();
    await engine.append(id, 'events', data);
    toast('已记录，等待同步 Saved on the phone');
    askBackgroundSync();
    if (navigator.onLine) autoSync();
    route();
  };
  draw(
    el('h2', {}, val(v, 'title') || '隐患'),
    el('div', { class: 'row' }, statusChip(h), el('span', { class: 'status ' + (val(v, 'severity') === 'high' ? 'high' : '') }, SEVERITY[h.severity || val(v, 'severity')] || '')),
    h.needs_review ? el('p', { class: 'err' }, '⚠ 有相互矛盾的记录，等待督导室核对。Conflicting events: the office will review.') : null,
    el('dl', { class: 'kv' }, el('dt', {}, '学校'), el('dd', {}, val(school, 'name') || ''), el('dt', {}, '位置'), el('dd', {}, val(v, 'location_desc') || ''),
      el('dt', {}, '描述'), el('dd', {}, val(v, 'description') || ''), h.deadline ? el('dt', {}, '整改期限') : null, h.deadline ? el('dd', {}, h.deadline + (h.overdue ? '（已逾期）' : '')) : null,
      h.responsible ? el('dt', {}, '责任人') : null, h.responsible ? el('dd', {}, [h.responsible.name, h.responsible.role, h.responsible.phone].filter(Boolean).join(' · ')) : null),
    el('div', { class: 'thumbs', id: 'photos' }),
    el('h3', {}, '跟进 Follow up'),
    el('label', { class: 'shutter', for: 'followup', style: 'min-height:96px' }, '📷 拍摄跟进照片 Take a follow-up photo', file),
    el('label', { class: 'field', for: 'note' }, el('span', { class: 'l' }, '情况说明 Note'), note),
    el('div', { class: 'row' },
      el('button', { type: 'button', class: 'danger', onclick: () => follow('verification_failed', 'evidence') }, '仍存在 Still present'),
      el('button', { type: 'button', class: 'primary', onclick: () => follow('verification_passed', 'after') }, '已整改 Rectified')),
    el('button', { type: 'button', class: 'wide', onclick: () => follow('photo_added', 'evidence') }, '只补充照片 Add the photo only'),
    el('h3', {}, '经过 History'),
    el('ol', { class: 'timeline' }, ...(h.events || []).map((e) => {
      const it = items[e.id]; let data = {};
      try { data = typeof it?.data === 'string' ? JSON.parse(it.data) : it?.data || {}; } catch { /* shown without note */ }
      return el('li', {}, el('b', {}, EVENT[e.type] || e.type), ' · ', fmtDate(e.occurred_at), e.server_received_at ? '' : ' · 待同步',
        data.note ? el('div', {}, data.note) : null, e.conflict && e.conflict !== 'none' ? el('div', { class: 'err' }, '已作为证据保留，等待核对 kept as evidence: ' + (e.reason || '')) : null);
    })),
  );
  document.getElementById('photos').append(...await photoTiles(shas));
}

// ---------- sync ----------

let syncing = null;
const phases = {};

// runSync syncs now. An automatic sync (quiet) that finds no network says
// nothing: the offline chip shows it already.
async function runSync(quiet = false) {
  if (syncing) return syncing;
  syncing = engine.sync((pr) => {
    if (pr.phase !== 'done') phases[pr.phase] = pr;
    paintProgress();
  }).then((rep) => { toast(`同步完成：发送 ${rep.pushed} 条，接收 ${rep.pulled} 条，照片 ${rep.photos} 张`); return rep; })
    .catch((e) => {
      const offline = e instanceof TypeError;
      if (!(quiet && offline)) toast(offline ? explain('offline') : explain(e.code));
      askBackgroundSync();
      throw e;
    })
    .finally(() => { syncing = null; if (!document.hidden) route(); });
  return syncing;
}

function paintProgress() {
  const box = document.getElementById('phases');
  if (!box) return;
  box.replaceChildren(...['push', 'pull', 'photos'].map((k) => {
    const pr = phases[k];
    const pct = pr ? (pr.total ? Math.round((100 * pr.done) / pr.total) : 100) : 0;
    const label = !pr ? '等待 waiting' : k === 'photos' ? `${fmtBytes(pr.done)} / ${fmtBytes(pr.total)}` : pr.total ? `${pr.done} / ${pr.total}` : `${pr.done}`;
    return el('div', { class: 'phase' }, el('div', { class: 'row' }, el('span', {}, PHASE[k]), el('span', { class: 'muted', style: 'text-align:right' }, label)),
      el('div', { class: 'progress', role: 'progressbar', 'aria-label': PHASE[k], 'aria-valuenow': pct, 'aria-valuemin': 0, 'aria-valuemax': 100 }, el('i', { style: `width:${pct}%` })));
  }));
}

async function screenSync() {
  const st = await engine.status();
  const probs = await engine.problems();
  const est = await db.estimate();
  const photos = (await db.all('photos')).filter((p) => p.state !== 'done');
  const labelsOf = async (v) => { const d = v && (await formDef(v.form_id, v.form_version)); const out = {}; const walk = (fs, pre) => fs?.forEach((f) => { out[pre + f.key] = text(f.label) || f.key; walk(f.fields, f.layout === 'inline' ? pre : pre + f.key + '.'); }); walk(d?.fields, ''); return out; };
  const items = [];
  for (const pb of probs) {
    const rec = (await db.get('records', pb.recordId))?.view;
    const labels = await labelsOf(rec);
    if (pb.type === 'rejected') {
      const fe = pb.error?.fields || {};
      items.push(el('div', { class: 'card problem' }, el('h3', {}, '✗ 服务器未接收 Not accepted'),
        el('p', {}, explain(pb.error?.code)), el('p', { class: 'muted' }, pb.error?.message || ''),
        Object.keys(fe).length ? el('ul', {}, ...Object.entries(fe).map(([k, m]) => el('li', {}, `${fieldName(k, labels)}：${m}`))) : null,
        rec?.form_id ? el('a', { class: 'btn wide', href: `#/form?form=${rec.form_id}&v=${rec.form_version}&record=${rec.id}` }, '修改这条记录 Edit the record') : null,
        el('p', { class: 'hint' }, '修改并保存后会重新发送；在此之前它一直保存在手机上。It stays on the phone until you fix it.')));
    } else {
      const box = el('div', { class: 'card conflict' }, el('h3', {}, '⚠ 与他人的修改冲突 Edited by two people'), el('p', { class: 'muted' }, `${labels[''] || ''}`));
      for (const [field, vers] of Object.entries(pb.versions)) {
        box.append(el('p', {}, el('b', {}, fieldName(field, labels)), ' 有两个不同的值，请选择保留哪一个：'));
        box.append(el('div', { class: 'versions' }, ...vers.map((ver, i) => el('div', {}, el('div', {}, JSON.stringify(ver.value)), el('div', { class: 'muted' }, `${i === 0 ? '当前显示 shown' : '另一版本 other'} · ${fmtDate(ver.at)} · ${ver.author || ''}`),
          el('button', { type: 'button', onclick: async () => { await engine.save({ id: pb.recordId, values: { [field]: ver.value } }); toast('已选择，等待同步 Chosen'); autoSync(); route(); } }, '保留这个 Keep this')))));
      }
      items.push(box);
    }
  }
  const last = st.lastSync;
  draw(
    el('h2', {}, '待同步 To sync'),
    el('dl', { class: 'kv' }, el('dt', {}, '记录'), el('dd', {}, `${st.outbox} 条待发送${st.inFlight ? `（${st.inFlight} 条已发出待确认）` : ''}`),
      el('dt', {}, '照片'), el('dd', {}, `${st.photos} 张，${fmtBytes(st.photoBytes)}`),
      el('dt', {}, '上次同步'), el('dd', {}, last ? `${fmtDate(last.finished)} ${last.error ? '未完成：' + explain(last.code) : '✓ 成功'}` : '尚未同步'),
      el('dt', {}, '存储'), el('dd', {}, `${fmtBytes(est.usage || 0)} / ${fmtBytes(est.quota || 0)}${est.persisted ? ' · 已锁定不被清理' : ''}`)),
    el('button', { type: 'button', class: 'primary wide', id: 'syncnow', onclick: () => runSync().catch(() => {}) }, syncing ? '正在同步… Syncing' : '⇅ 立即同步 Sync now'),
    el('div', { id: 'phases' }),
    photos.length ? el('p', { class: 'hint' }, '照片按块上传，断网或关闭页面后会从服务器已收到的位置继续。Photos resume where the server stopped.') : null,
    el('h3', {}, '需要处理 Needs attention'),
    items.length ? items : el('p', { class: 'muted' }, '没有需要处理的问题。Nothing to fix.'),
  );
  paintProgress();
}

async function screenStorage() {
  const est = await db.estimate();
  const st = await engine.status();
  draw(el('div', { class: 'full' }, el('h2', {}, '⚠ 手机存储空间快满了 Storage almost full'),
    el('p', {}, `本应用已用 ${fmtBytes(est.usage || 0)}，可用上限约 ${fmtBytes(est.quota || 0)}。`),
    el('p', {}, `还有 ${st.outbox} 条记录和 ${st.photos} 张照片（${fmtBytes(st.photoBytes)}）没有同步。它们不会被删除。`),
    el('p', {}, '请尽快连接网络同步：照片上传成功后，手机上的原图会自动释放空间。也可以在手机设置里清理其他应用的文件。'),
    el('p', { class: 'muted' }, 'Unsynced records and photos are never deleted. Sync on Wi-Fi: uploaded photos free their space.'),
    el('button', { type: 'button', class: 'primary wide', onclick: () => runSync().catch(() => {}) }, '⇅ 立即同步 Sync now')));
}

start();
