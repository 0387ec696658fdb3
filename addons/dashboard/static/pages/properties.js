// The properties page: cost by one property's values (`by`), optionally split by a second property (`then`), from
// /api/properties (queries.property_names and queries.costs). `by` and `then` live in the URL, beside the scope.
import {
  api, chart, coloured, el, empty, href, int, link, navigate, params, pct, rowsOf, section, table, usd, usdPartial,
} from '../ui.js';

const CHART_VALUES = 20;  // the bar chart shows the most spent values; the table has them all

export async function render({params: url}) {
  const query = new URLSearchParams(url);
  const answer = await api('properties', query);
  const names = rowsOf(answer.names);
  if (!answer.by) {
    return section('Properties', empty('No call in this time range and filters carries a property ' +
      '(send Helicone-Property-<Name>: <value> headers to group costs by them).'));
  }
  const rows = rowsOf(answer.costs);
  const byKey = answer.columns.by;
  const thenKey = answer.columns.then;
  const values = rows.filter((r) => r.kind === (thenKey ? 'subtotal' : 'group'));
  const nodes = [pickers(names, answer.by, answer.then)];
  if (!rows.length) return [...nodes, section('Cost by value', empty('No calls in this time range and filters.'))];
  nodes.push(costChart(values, byKey, answer.by));
  nodes.push(section(thenKey ? `Cost by ${answer.by}, then ${answer.then}` : `Cost by ${answer.by}`,
    costTable(rows, answer.by, byKey, answer.then, thenKey)));
  return nodes;
}

/** The two pickers: the property to group by and an optional one to split each value by. */
function pickers(names, by, then) {
  const option = (r, chosen) => el('option', {value: r.name, selected: r.name === chosen},
    `${r.name} (${int(r.calls)} calls)`);
  const go = () => navigate(href('properties', {by: bySelect.value, then: thenSelect.value || null}));
  const bySelect = el('select', {name: 'by', onchange: () => { thenSelect.value = ''; go(); }},
    names.map((r) => option(r, by)));
  const thenSelect = el('select', {name: 'then', onchange: go}, el('option', {value: ''}, '(none)'),
    names.filter((r) => r.name !== by).map((r) => option(r, then)));
  return el('div', {class: 'pickers'}, el('label', {}, 'Property ', bySelect),
    el('label', {}, 'then by ', thenSelect));
}

/** Cost per value of `by` as horizontal bars (readable on a phone: the labels get their own column). */
function costChart(values, byKey, by) {
  const shown = values.slice(0, CHART_VALUES);
  const labels = shown.map((r) => r[byKey] ?? `(no ${by})`);
  return chart(`Cost per ${by}${values.length > shown.length ? ` (top ${shown.length} of ${values.length})` : ''}`, {
    type: 'bar',
    data: {labels, datasets: coloured([{label: 'cost', data: shown.map((r) => r.cost_usd === null ? 0 :
      Number(r.cost_usd))}])},
    options: {
      indexAxis: 'y',
      plugins: {legend: {display: false}, tooltip: {callbacks: {
        label: (ctx) => `cost: ${usdPartial(shown[ctx.dataIndex].cost_usd, shown[ctx.dataIndex].unpriced)}`}}},
      scales: {x: {beginAtZero: true, ticks: {maxTicksLimit: 6, callback: (v) => usd(v)}},
        y: {ticks: {autoSkip: false}}},
    },
  }, {height: Math.max(140, 28 * shown.length + 50)});
}

/** The figures per value; with `then`, each value's subtotal row (bold) and its `then` values nested under it. */
function costTable(rows, by, byKey, then, thenKey) {
  const filters = params().getAll('property');
  const requestsOf = (r) => {
    // A value's calls: the scope's property filters and this row's value(s); no filter selects "no value".
    if (r.kind === 'total' || r[byKey] === null || (r.kind === 'group' && thenKey && r[thenKey] === null)) return null;
    const extra = [`${by}=${r[byKey]}`];
    if (r.kind === 'group' && thenKey) extra.push(`${then}=${r[thenKey]}`);
    return href('requests', {property: [...filters, ...extra]});
  };
  const label = (r) => {
    if (r.kind === 'total') return 'Total';
    const text = r.kind === 'group' && thenKey ? (r[thenKey] ?? `(no ${then})`) : (r[byKey] ?? `(no ${by})`);
    const url = requestsOf(r);
    return el('span', {class: r.kind === 'group' && thenKey ? 'nested' : null}, url ? link(url, text) : text);
  };
  const columns = [
    {key: 'value', label: then ? `${by} / ${then}` : by, format: (v, r) => label(r)},
    // Cost and share first: what a phone shows without scrolling sideways.
    {key: 'cost_usd', label: 'Cost', format: (v, r) => usdPartial(v, r.unpriced), num: true},
    {key: 'share_pct', label: 'Share', format: (v) => pct(v), num: true},
    {key: 'requests', label: 'Requests', format: int, num: true},
    {key: 'tokens', label: 'Tokens', format: (v, r) => int(Number(r.input_tokens) + Number(r.output_tokens)),
      num: true},
    {key: 'avg_cost_usd', label: 'Avg cost', format: usd, num: true},
  ];
  const notes = rows.some((r) => Number(r.unpriced) > 0) ?
    el('p', {class: 'note muted'}, '+? : some calls have no known price; $? : none has one. ' +
      'Avg cost is per priced call.') : null;
  return [table(columns, rows, {rowClass: (r) => r.kind === 'group' ? (thenKey ? 'child' : null) : r.kind}), notes];
}
