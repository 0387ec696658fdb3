// The dashboard's shell: the page picked by the path, one time-range picker and one filter bar for every page (all in
// the URL, so a view can be shared), the gateway-key prompt, and live refresh while new calls land.
import {
  ApiError, DEFAULT_SINCE, api, clearCharts, el, href, link, navigate, params, scopeParams,
} from './ui.js';

const PAGES = [
  ['overview', 'Overview'], ['requests', 'Requests'], ['users', 'Users'], ['properties', 'Properties'],
  ['sessions', 'Sessions'], ['limits', 'Rate limits & cache'], ['alerts', 'Alerts'],
];
const RANGES = ['1h', '24h', '7d', '30d'];
const FILTERS = ['model', 'provider', 'user', 'property', 'session', 'key', 'status', 'cache', 'q'];
const POLL_MS = 3000;

const main = document.getElementById('page');
const status = document.getElementById('status');
let current = null; // {name, module}
let renderId = 0;
let lastSeq = null;

function pageName() {
  const first = location.pathname.split('/').filter(Boolean)[0] || 'overview';
  return PAGES.some(([name]) => name === first) ? first : 'overview';
}

/** The path after the page's name (`/sessions/<id>` -> '<id>'), decoded; null when none. */
function pageItem() {
  const parts = location.pathname.split('/').filter(Boolean);
  return parts.length > 1 ? decodeURIComponent(parts.slice(1).join('/')) : null;
}

// ---------------------------------------------------------------------------------------------- header

function drawNav() {
  const name = pageName();
  document.getElementById('nav').replaceChildren(...PAGES.map(([page, title]) => {
    const a = link(href(page), title);
    if (page === name) a.setAttribute('aria-current', 'page');
    return a;
  }));
}

function drawRanges() {
  const p = params();
  const since = p.get('since') || DEFAULT_SINCE;
  const custom = p.has('until') || !RANGES.includes(since);
  const box = document.getElementById('ranges');
  box.replaceChildren(...RANGES.map((range) => el('button', {
    type: 'button', 'aria-pressed': String(!custom && since === range),
    onclick: () => navigate(withScope({since: range, until: null})),
  }, range)), el('button', {
    type: 'button', 'aria-pressed': String(custom), onclick: () => {
      const form = document.getElementById('custom-range');
      form.hidden = !form.hidden;
    },
  }, 'custom'));
  const form = document.getElementById('custom-range');
  form.hidden = !custom;
  form.since.value = isoLocal(custom ? p.get('since') : null);
  form.until.value = isoLocal(p.get('until'));
}

function isoLocal(value) {
  // An ISO time or date, as a datetime-local input shows it (UTC, to the minute); '' for anything else.
  if (!value || !/^\d{4}-\d{2}-\d{2}/.test(value)) return '';
  return value.length === 10 ? `${value}T00:00` : value.slice(0, 16);
}

function drawFilters() {
  const p = params();
  const form = document.getElementById('filters');
  for (const name of FILTERS) {
    const field = form.elements[name];
    const value = p.getAll(name).slice(-1)[0] || '';
    // A value the status list does not offer (a shared link's status=502) gets an option, or the field would show
    // "any" and Apply would drop it.
    if (field.tagName === 'SELECT' && ![...field.options].some((o) => o.value === value)) field.add(el('option', {}, value));
    field.value = value;
  }
  const active = [];
  for (const name of FILTERS) for (const value of p.getAll(name)) active.push([name, value]);
  document.getElementById('filter-count').textContent = active.length ? `(${active.length})` : '';
  document.getElementById('chips').replaceChildren(...active.map(([name, value]) => el('span', {class: 'chip'},
    `${name}: ${value}`, el('button', {type: 'button', 'aria-label': `remove ${name} ${value}`, onclick: () => {
      navigate(withScope({[name]: params().getAll(name).filter((v) => v !== value)}));
    }}, '×'))));
}

/** The current URL with scope arguments replaced (`null` removes one, an array sets several values); a page's own
 * arguments that depend on the rows shown (a cursor, either way) are dropped. */
function withScope(changes) {
  const p = params();
  p.delete('before');
  p.delete('after');
  for (const [k, v] of Object.entries(changes)) {
    p.delete(k);
    for (const one of [].concat(v ?? [])) if (one !== '') p.append(k, one);
  }
  const query = p.toString();
  return `${location.pathname}${query ? '?' + query : ''}`;
}

function wireControls() {
  document.getElementById('custom-range').addEventListener('submit', (e) => {
    e.preventDefault();
    const form = e.target;
    navigate(withScope({since: form.since.value || DEFAULT_SINCE, until: form.until.value || null}));
  });
  document.getElementById('filters').addEventListener('submit', (e) => {
    e.preventDefault();
    const form = e.target;
    const changes = {};
    // A field edits its filter's newest value; the others (a repeated model, a property link's two properties) stay.
    const p = params();
    for (const name of FILTERS) changes[name] = [...p.getAll(name).slice(0, -1), form.elements[name].value.trim()];
    navigate(withScope(changes));
  });
  document.getElementById('clear-filters').addEventListener('click', () => {
    navigate(withScope(Object.fromEntries(FILTERS.map((name) => [name, null]))));
  });
  window.addEventListener('popstate', () => render());
  window.addEventListener('llmtap:navigate', () => render());
}

// ---------------------------------------------------------------------------------------------- pages

async function render({quiet = false} = {}) {
  const id = ++renderId;
  // A live refresh leaves the controls be: the URL has not changed, and redrawing them would wipe a filter or a
  // custom range the user is typing (and close the custom-range form) every time a call lands.
  if (!quiet) {
    drawNav();
    drawRanges();
    drawFilters();
  }
  const name = pageName();
  const title = PAGES.find(([page]) => page === name)[1];
  document.title = `${title} · llmtap`;
  try {
    // Where the log ends, for the live refresh (this also asks for the key, if one is needed), side by side with the
    // page's own reads.
    const seq = lastSeq === null ? api('seq', new URLSearchParams()).then((answer) => { lastSeq = answer.seq; }) : null;
    if (!current || current.name !== name) current = {name, module: await import(`./pages/${name}.js`)};
    // A page builds its content off-screen, then swaps it in whole: a refresh never flashes an empty page.
    const [, content] = await Promise.all([seq,
      current.module.render({item: pageItem(), params: params(), scope: scopeParams()})]);
    if (id !== renderId) return;
    clearCharts();
    main.replaceChildren(el('h1', {}, title), ...[content].flat());
    if (typeof current.module.mounted === 'function') current.module.mounted(main);
    main.dataset.state = 'ready';
    performance.mark('llmtap:ready');  // what scripts/bench_dashboard.py times a page to
  } catch (error) {
    if (id !== renderId) return;
    if (quiet && !(error instanceof ApiError && error.status === 401)) {
      status.textContent = `refresh failed: ${error.message}`;
      return;
    }
    clearCharts();
    main.replaceChildren(el('h1', {}, title), error instanceof ApiError && error.status === 401 ? keyPrompt() :
      el('div', {class: 'error', role: 'alert'}, error.message));
    main.dataset.state = 'error';
  }
}

function keyPrompt() {
  const input = el('input', {type: 'password', name: 'key', autocomplete: 'off', required: true});
  return el('form', {class: 'key-prompt', onsubmit: (e) => {
    e.preventDefault();
    sessionStorage.setItem('llmtap-key', input.value);
    render();
  }}, el('p', {}, 'This dashboard asks for a gateway key (one of gateway.keys in the config).'),
  el('label', {}, 'Gateway key ', input), el('button', {type: 'submit'}, 'Open'));
}

// ---------------------------------------------------------------------------------------------- live

async function poll() {
  if (document.visibilityState === 'visible') {
    try {
      const {seq} = await api('seq', new URLSearchParams());
      if (lastSeq !== null && seq !== lastSeq && main.dataset.state === 'ready' &&
          (!current || current.module.live !== false) && !params().has('before')) {
        await render({quiet: true});
      }
      lastSeq = seq;
      status.textContent = `live · checked ${new Date().toISOString().slice(11, 19)} UTC`;
    } catch (error) {
      status.textContent = `live updates paused: ${error.message}`;
      if (error instanceof ApiError && error.status === 401 && main.dataset.state !== 'error') render();
    }
  }
  setTimeout(poll, POLL_MS);
}

wireControls();
render().then(poll);

