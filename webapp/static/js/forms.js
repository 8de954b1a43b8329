// forms.js: renders a form definition (package forms: fields, groups,
// repeats, choice lists) as a phone screen. The values live in one object
// shaped as the record stores them; the core's evaluate answers what is
// relevant, the calculated values (a lesson's total and band) and the
// errors, and this module only shows them. A field type this build does
// not know is shown as a text box with a note, never as a blank.

import { text } from './i18n.js';

const LONG = /summary|highlights|problems|suggestions|description|actions|note|strengths|response|comment|reason/;
let uid = 0;

// chinaISO writes a time as RFC 3339 in China time (+08:00), the way the
// forms compare a datetime with a date ("check-in on the visit day").
export function chinaISO(d) {
  return new Date(d.getTime() + 8 * 3600e3).toISOString().replace(/\.\d+Z$/, '+08:00');
}

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) if (k != null) e.append(k.nodeType ? k : document.createTextNode(k));
  return e;
}
export { el };

// Form is one form on screen. hide names fields the app fills in itself
// (school, inspector, times); they are not shown.
export class Form {
  constructor(def, values, { hide = new Set(), onChange = () => {} } = {}) {
    this.def = def; this.values = values; this.hide = hide; this.onChange = onChange;
    this.nodes = []; this.touched = new Set(); this.showAll = false; this.labels = {};
    this.root = el('div', { class: 'form' });
    this.build(def.fields, this.root, this.topCtx());
  }

  topCtx() {
    const v = () => this.values;
    return { path: (k) => k, get: (k) => v()[k], set: (k, x) => { if (x === undefined) delete v()[k]; else v()[k] = x; } };
  }

  changed(path) {
    this.touched.add(path);
    this.onChange(path);
  }

  build(fields, parent, ctx) {
    for (const f of fields) {
      // Server fields, fields the app fills in, and calculated values that
      // have no label (a rubric row's name and maximum) are not shown.
      if (f.origin === 'server' || this.hide.has(f.key) || (f.calculation && !text(f.label))) continue;
      const path = ctx.path(f.key);
      this.labels[path.replace(/\[\d+\]/g, '')] = text(f.label) || f.key;
      if (f.type === 'group') { this.group(f, parent, ctx, path); continue; }
      if (f.type === 'repeat') { this.repeat(f, parent, ctx, path); continue; }
      const node = this.input(f, ctx, path);
      parent.append(node.box);
      this.nodes.push(node);
    }
  }

  group(f, parent, ctx, path) {
    const box = el('fieldset', { id: 'f-' + path }, el('legend', {}, text(f.label) || f.key));
    if (f.hint && text(f.hint)) box.append(el('p', { class: 'hint' }, text(f.hint)));
    parent.append(box);
    this.nodes.push({ path, box, group: true });
    const layout = f.layout || 'object';
    let sub;
    if (layout === 'inline') sub = ctx;
    else if (layout === 'answers') {
      const list = () => { let a = ctx.get(f.key); if (!Array.isArray(a)) { a = []; ctx.set(f.key, a); } return a; };
      sub = {
        path: (k) => `${path}.${k}`,
        get: (k) => list().find((a) => a.qid === k)?.value,
        set: (k, x) => {
          const a = list(); const i = a.findIndex((e) => e.qid === k);
          if (x === undefined) { if (i >= 0) a.splice(i, 1); } else if (i >= 0) a[i].value = x; else a.push({ qid: k, value: x });
        },
      };
    } else {
      const obj = () => { let o = ctx.get(f.key); if (!o || typeof o !== 'object') { o = {}; ctx.set(f.key, o); } return o; };
      sub = { path: (k) => `${path}.${k}`, get: (k) => ctx.get(f.key)?.[k], set: (k, x) => { if (x === undefined) delete obj()[k]; else obj()[k] = x; } };
    }
    this.build(f.fields || [], box, sub);
  }

  repeat(f, parent, ctx, path) {
    const box = el('fieldset', { id: 'f-' + path }, el('legend', {}, text(f.label) || f.key));
    parent.append(box);
    const rowsBox = el('div');
    box.append(rowsBox);
    const rows = () => { let a = ctx.get(f.key); if (!Array.isArray(a)) { a = []; ctx.set(f.key, a); } return a; };
    const render = () => {
      rowsBox.replaceChildren();
      this.nodes = this.nodes.filter((n) => !n.path.startsWith(path + '['));
      rows().forEach((row, i) => {
        const rbox = el('div', { class: 'card' }, el('div', { class: 'row' }, el('b', {}, `${text(f.label) || f.key} ${i + 1}`),
          el('button', { type: 'button', class: 'danger', onclick: () => { rows().splice(i, 1); render(); this.changed(path); } }, '删除本行 Remove')));
        rowsBox.append(rbox);
        const rctx = { path: (k) => `${path}[${i}].${k}`, get: (k) => row[k], set: (k, x) => { if (x === undefined) delete row[k]; else row[k] = x; } };
        this.build(f.fields || [], rbox, rctx);
      });
      if (this.lastEval) this.update(this.lastEval);
    };
    box.append(el('button', { type: 'button', class: 'wide', onclick: () => { rows().push({}); render(); this.changed(path); } }, `＋ 添加 ${text(f.label) || f.key}`));
    this.nodes.push({ path, box, group: true });
    render();
  }

  input(f, ctx, path) {
    const id = 'i' + (++uid);
    const label = text(f.label) || f.key;
    const box = el('div', { class: 'field', id: 'f-' + path });
    const head = el('span', { class: 'l' + (f.required ? ' req' : '') }, label);
    const err = el('div', { class: 'err', id: id + '-e', role: 'alert' });
    const set = (x) => { ctx.set(f.key, x); this.changed(path); };
    const cur = ctx.get(f.key);
    const choices = (this.def.choices || {})[f.choice_list] || [];
    let control; let show = null;
    switch (f.type) {
      case 'note':
        box.append(el('p', { class: 'hint' }, label));
        return { path, box, f, err: el('div') };
      case 'select_one':
      case 'boolean': {
        const opts = f.type === 'boolean' ? [{ value: true, label: { zh: '是' } }, { value: false, label: { zh: '否' } }] : choices;
        control = el('div', { class: 'choices', role: 'radiogroup', 'aria-labelledby': id + '-l' });
        for (const c of opts) {
          const inp = el('input', { type: 'radio', name: id, value: String(c.value), checked: cur === c.value, onchange: () => set(c.value) });
          control.append(el('label', {}, inp, text(c.label) || String(c.value)));
        }
        show = (v) => control.querySelectorAll('input').forEach((i, k) => { i.checked = v === opts[k].value; });
        box.append(el('span', { class: 'l' + (f.required ? ' req' : ''), id: id + '-l' }, label), control);
        break;
      }
      case 'select_multiple': {
        control = el('div', { class: 'choices', role: 'group', 'aria-labelledby': id + '-l' });
        const sel = new Set(Array.isArray(cur) ? cur : []);
        for (const c of choices) {
          const inp = el('input', { type: 'checkbox', value: c.value, checked: sel.has(c.value), onchange: () => {
            const now = [...control.querySelectorAll('input:checked')].map((i) => i.value);
            set(now.length ? now : undefined);
          } });
          control.append(el('label', {}, inp, text(c.label) || c.value));
        }
        box.append(el('span', { class: 'l' + (f.required ? ' req' : ''), id: id + '-l' }, label), control);
        break;
      }
      default: {
        const known = ['text', 'integer', 'decimal', 'date', 'time', 'datetime', 'text_list', 'geopoint', 'photo'].includes(f.type);
        const long = f.type === 'text' && (LONG.test(f.key) || f.appearance === 'multiline');
        const type = { integer: 'number', decimal: 'text', date: 'date', time: 'time', datetime: 'datetime-local' }[f.type] || 'text';
        control = long ? el('textarea', { id, rows: 3 }) : el('input', { id, type, inputmode: f.type === 'decimal' ? 'decimal' : f.type === 'integer' ? 'numeric' : null });
        const toInput = (v) => {
          if (v == null) return '';
          if (f.type === 'datetime') { const d = new Date(v); if (Number.isNaN(d.getTime())) return ''; const p = (n) => String(n).padStart(2, '0'); return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`; }
          if (f.type === 'text_list') return Array.isArray(v) ? v.join('，') : '';
          if (f.type === 'geopoint') return v && v.lat != null ? `${v.lat}, ${v.lng}` : '';
          return String(v);
        };
        const fromInput = (s) => {
          if (s === '') return undefined;
          switch (f.type) {
            case 'integer': return Number.isInteger(Number(s)) ? Number(s) : s;
            case 'decimal': return s.trim();
            case 'datetime': return chinaISO(new Date(s));
            case 'text_list': return s.split(/[,，、\s]+/).filter(Boolean);
            default: return s;
          }
        };
        control.value = toInput(cur);
        control.addEventListener(f.type === 'text' || f.type === 'decimal' || !known ? 'input' : 'change', () => set(fromInput(control.value)));
        show = (v) => { if (document.activeElement !== control) control.value = toInput(v); };
        if (f.calculation) { control.readOnly = true; control.setAttribute('aria-readonly', 'true'); }
        box.append(el('label', { for: id }, head), control);
        if (f.type === 'geopoint') {
          control.readOnly = true;
          box.append(el('button', { type: 'button', onclick: () => navigator.geolocation?.getCurrentPosition((pos) => {
            const g = { lat: +pos.coords.latitude.toFixed(6), lng: +pos.coords.longitude.toFixed(6), accuracy_m: Math.round(pos.coords.accuracy) };
            control.value = toInput(g); set(g);
          }, () => {}, { enableHighAccuracy: true, timeout: 15000 }) }, '📍 记录当前位置 Record position'));
        }
        if (!known) box.append(el('p', { class: 'hint' }, `此题型（${f.type}）本版本暂不支持专门的输入方式，请按文字填写。This question type is not supported yet: type the answer as text.`));
      }
    }
    if (f.hint && text(f.hint)) box.append(el('p', { class: 'hint' }, text(f.hint)));
    box.append(err);
    control?.setAttribute?.('aria-describedby', id + '-e');
    return { path, box, f, err, show, get: () => ctx.get(f.key) };
  }

  // update shows an evaluation: relevance, calculated values, errors of
  // fields the inspector has touched (all of them after a submit).
  update(ev) {
    this.lastEval = ev;
    const rel = ev.Relevant || ev.relevant || {};
    const errs = ev.Errors || ev.errors || {};
    for (const n of this.nodes) {
      const r = rel[n.path];
      n.box.hidden = r === false;
      if (n.group) { n.box.classList.toggle('bad', !!errs[n.path] && this.showAll); continue; }
      if (n.f?.calculation) {
        const v = valueAt(ev.Values || ev.values, n.path);
        n.show?.(v);
      }
      const e = errs[n.path];
      const visible = e && (this.showAll || this.touched.has(n.path));
      n.err.textContent = visible ? text(e) : '';
      n.box.classList.toggle('bad', !!visible);
    }
  }
}

// valueAt reads a path such as "scores[1].score" or "answers.Q1".
export function valueAt(values, path) {
  let cur = values;
  for (const part of path.split('.')) {
    if (cur == null) return undefined;
    const m = part.match(/^(.+?)\[(\d+)\]$/);
    if (m) { cur = cur[m[1]]?.[Number(m[2])]; continue; }
    if (Array.isArray(cur)) cur = cur.find((a) => a.qid === part)?.value;
    else cur = cur[part];
  }
  return cur;
}
