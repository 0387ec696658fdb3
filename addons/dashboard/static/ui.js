// What every page builds with: the URL's scope, the JSON endpoints, formats, DOM, tables, cards and charts.
// Text from the log is only ever set as text (textContent, Chart.js labels on a canvas), never parsed as HTML.

// The URL arguments every page shares (the analytics scope); a page's own (by, then, before) stay on that page.
export const SCOPE_KEYS = ['since', 'until', 'model', 'provider', 'user', 'property', 'session', 'key', 'status',
  'cache', 'q'];
export const DEFAULT_SINCE = '7d';

// ---------------------------------------------------------------------------------------------- the URL

/** The current URL's arguments. */
export function params() {
  return new URLSearchParams(location.search);
}

/** The current URL's scope arguments only (what a link to another page carries). */
export function scopeParams(from = params()) {
  const kept = new URLSearchParams();
  for (const [k, v] of from) if (SCOPE_KEYS.includes(k) && v !== '') kept.append(k, v);
  return kept;
}

/** A link to `page` (e.g. 'requests') carrying the current scope, with `extra` arguments set (a value of null
 * removes one; an array sets several values). */
export function href(page, extra = {}, base = scopeParams()) {
  const p = new URLSearchParams(base);
  for (const [k, v] of Object.entries(extra)) {
    p.delete(k);
    if (v === null || v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) p.append(k, one);
  }
  const query = p.toString();
  return `/${page}${query ? '?' + query : ''}`;
}

/** Go to `url` without reloading the page (the app re-renders). */
export function navigate(url, replace = false) {
  if (replace) history.replaceState(null, '', url); else history.pushState(null, '', url);
  window.dispatchEvent(new Event('llmtap:navigate'));
}

// ---------------------------------------------------------------------------------------------- the endpoints

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

/** GET /api/<path> with the current scope (or `query`), returns the decoded JSON; throws ApiError on an error
 * answer (its message is the server's one line). */
export async function api(path, query = scopeParams()) {
  const q = new URLSearchParams(query).toString();
  const headers = {};
  const key = sessionStorage.getItem('llmtap-key');
  if (key) headers['Authorization'] = `Bearer ${key}`;
  const response = await fetch(`/api/${path}${q ? '?' + q : ''}`, {headers});
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) throw new ApiError(response.status, (body && body.error) || `${response.status} ${response.statusText}`);
  return body;
}

/** Rows of a `Rows` answer as objects (the server already sends them so). */
export function rowsOf(answer) {
  return answer && Array.isArray(answer.rows) ? answer.rows : [];
}

// ---------------------------------------------------------------------------------------------- formats

/** USD as llmtap shows money everywhere: $0, 3 significant digits under a dollar, cents above, $? unknown. */
export function usd(value) {
  if (value === null || value === undefined || value === '') return '$?';
  const n = Number(value);
  if (!Number.isFinite(n)) return '$?';
  if (n === 0) return '$0';
  const sign = n < 0 ? '-' : '';
  const size = Math.abs(n);
  if (size >= 0.9995) {
    return `${sign}$${size.toLocaleString('en-US', {minimumFractionDigits: 2, maximumFractionDigits: 2})}`;
  }
  const decimals = Math.min(20, Math.max(0, 2 - Math.floor(Math.log10(size))));
  let text = size.toFixed(decimals);
  if (text.includes('.')) text = text.replace(/0+$/, '').replace(/\.$/, '');
  return `${sign}$${text}`;
}

/** A count with thousands separators; '–' when unknown. */
export function int(value) {
  if (value === null || value === undefined) return '–';
  return Number(value).toLocaleString('en-US', {maximumFractionDigits: 0});
}

/** Milliseconds: '840 ms', '1,234 ms'; '–' when unknown. */
export function ms(value) {
  if (value === null || value === undefined) return '–';
  return `${Number(value).toLocaleString('en-US', {maximumFractionDigits: 0})} ms`;
}

/** A percentage given as 0-100: '12.5%'; '–' when unknown. */
export function pct(value, digits = 1) {
  if (value === null || value === undefined) return '–';
  return `${Number(value).toLocaleString('en-US', {maximumFractionDigits: digits})}%`;
}

/** An ISO time as 'YYYY-MM-DD HH:MM:SS' in UTC (llmtap's periods are UTC). */
export function time(value) {
  if (!value) return '–';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toISOString().replace('T', ' ').slice(0, 19);
}

/** A period label for a chart axis: the time without what every label shares. */
export function periodLabel(value, stepSeconds) {
  const t = time(value);
  if (stepSeconds >= 86400) return t.slice(0, 10);
  return t.slice(5, 16);
}

// ---------------------------------------------------------------------------------------------- DOM

/** An element: `attrs` are properties/attributes (class, href, onclick, dataset...), `children` are nodes or text
 * (set as text, never as HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A link inside the app: followed without a reload. */
export function link(url, ...children) {
  return el('a', {href: url, onclick: (e) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    navigate(url);
  }}, ...children);
}

/** A titled section of a page. */
export function section(title, ...children) {
  return el('section', {class: 'panel'}, el('h2', {}, title), ...children);
}

/** A line saying there is nothing to show. */
export function empty(text) {
  return el('p', {class: 'empty'}, text);
}

/** KPI cards: [{label, value (text), note?, id?, href? (the value links there)}]. */
export function cards(items) {
  return el('div', {class: 'cards'}, items.map((c) => el('div', {class: 'card', 'data-kpi': c.id || c.label},
    el('div', {class: 'card-label'}, c.label),
    el('div', {class: 'card-value num'}, c.href ? link(c.href, c.value) : c.value),
    c.note ? el('div', {class: 'card-note'}, c.note) : null)));
}

/** A table: `columns` are {key, label, format?(value,row) -> text|Node, num?: right-aligned, href?(row) -> url}.
 * Rows are objects. Wrapped so a narrow screen scrolls it sideways instead of squeezing it. */
export function table(columns, rows, {caption, rowClass} = {}) {
  const head = el('thead', {}, el('tr', {}, columns.map((c) => el('th', {class: c.num ? 'num' : null, scope: 'col'},
    c.label))));
  const body = el('tbody', {}, rows.map((row) => el('tr', {class: rowClass ? rowClass(row) : null},
    columns.map((c) => {
      const value = row[c.key];
      let content = c.format ? c.format(value, row) : (value === null || value === undefined ? '–' : String(value));
      if (c.href && !(content instanceof Node)) {
        const url = c.href(row);
        if (url) content = link(url, content);
      }
      return el('td', {class: c.num ? 'num' : null, 'data-col': c.key}, content);
    }))));
  return el('div', {class: 'table-wrap'}, el('table', {}, caption ? el('caption', {}, caption) : null, head, body));
}

// ---------------------------------------------------------------------------------------------- charts

export const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7',
  '#9c755f', '#bab0ac'];

const charts = new Set();

/** Destroy the charts on screen (the shell calls this as it swaps a page's new content in). Charts of the new
 * content, built off-screen, are not connected yet and stay. */
export function clearCharts() {
  for (const c of charts) {
    if (!c.canvas || !c.canvas.isConnected) continue;
    c.destroy();
    charts.delete(c);
  }
}

/** A Chart.js chart in a new box: `config` is Chart.js's own ({type, data, options}); `yFormat` formats the value
 * axis and tooltips (usd, ms, int, pct). Returns the box. */
export function chart(title, config, {yFormat = int, height = 240} = {}) {
  const canvas = el('canvas', {role: 'img', 'aria-label': title});
  const box = el('div', {class: 'chart'}, canvas);
  box.style.height = `${height}px`;  // a CSSOM property, which the page's CSP allows (a style attribute it does not)
  const holder = section(title, box);
  if (!window.Chart) {
    box.replaceChildren(empty('The charting library did not load.'));
    return holder;
  }
  const options = config.options || {};
  const stacked = !!options.stacked;
  delete options.stacked;
  const made = new window.Chart(canvas, {
    ...config,
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      interaction: {mode: 'index', intersect: false},
      plugins: {
        legend: {position: 'bottom', labels: {boxWidth: 12}},
        tooltip: {callbacks: {label: (ctx) => `${ctx.dataset.label}: ${yFormat(ctx.parsed.y)}`}},
      },
      scales: {
        x: {stacked, ticks: {maxRotation: 0, autoSkip: true, autoSkipPadding: 12, maxTicksLimit: 8}},
        // counts step by whole numbers: a 0-2 axis read "0 0 1 1 2 2" with int's rounding
        y: {stacked, beginAtZero: true,
          ticks: {callback: (v) => yFormat(v), precision: yFormat === int ? 0 : undefined}},
      },
      ...options,
    },
  });
  charts.add(made);
  return holder;
}

// A line draws no dot at its points, except where a value has no neighbour to join: it would not show at all.
function isolatedPoint(ctx) {
  const data = ctx.dataset.data;
  const i = ctx.dataIndex;
  const known = (j) => j >= 0 && j < data.length && data[j] !== null && data[j] !== undefined;
  return known(i) && !known(i - 1) && !known(i + 1) ? 3 : 0;
}

/** Datasets in the palette's colours: [{label, data}] -> Chart.js datasets (bars filled, lines not). */
export function coloured(datasets, type = 'bar') {
  return datasets.map((d, i) => ({
    ...d,
    backgroundColor: PALETTE[i % PALETTE.length] + (type === 'line' ? '33' : 'cc'),
    borderColor: PALETTE[i % PALETTE.length],
    borderWidth: type === 'line' ? 2 : 0,
    pointRadius: type === 'line' ? isolatedPoint : 0,
    fill: false,
  }));
}

/** A sum of money that may leave calls out: `$1.23+?` when `unpriced` of its calls have no price, `$?` when none
 * has one (as the terminal's reports write it). */
export function usdPartial(value, unpriced) {
  return value !== null && value !== undefined && Number(unpriced) > 0 ? `${usd(value)}+?` : usd(value);
}
