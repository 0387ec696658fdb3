// The overview page: the scope's figures at a glance (cards) and over time (spend by model, requests and errors,
// latency), all from /api/overview (analytics/overview.py); this module only lays them out.
import {
  api, cards, chart, coloured, el, empty, href, int, ms, pct, periodLabel, rowsOf, section, usd,
} from '../ui.js';

export async function render() {
  const answer = await api('overview');
  const summary = rowsOf(answer.summary)[0];
  const series = rowsOf(answer.series);
  const step = answer.step_s;
  const content = [cards(kpis(summary))];
  if (!series.length) {
    content.push(section('Over time', empty('No calls in this range.')));
    return content;
  }
  const labels = series.map((row) => periodLabel(row.bucket, step));
  content.push(spendChart(labels, series, rowsOf(answer.spend_by_model), summary.unpriced),
    el('div', {class: 'grid2'},
      chart('Requests and errors', {type: 'line', data: {labels, datasets: coloured([
        {label: 'requests', data: series.map((row) => row.requests)},
        {label: 'errors', data: series.map((row) => row.errors)},
      ], 'line')}}, {yFormat: int}),
      chart('Latency', {type: 'line', data: {labels, datasets: coloured([
        {label: 'p50', data: series.map((row) => row.p50_latency_ms)},
        {label: 'p95', data: series.map((row) => row.p95_latency_ms)},
      ], 'line')}}, {yFormat: ms})));
  return content;
}

/** The cards: what a person asks first of a time range. */
function kpis(s) {
  const none = s.requests === 0;
  const priced = s.requests - s.unpriced;
  return [
    {id: 'spend', label: 'Total spend', value: none ? usd(0) : usd(s.cost_usd),
      note: s.unpriced ? `+ ${int(s.unpriced)} ${s.unpriced === 1 ? 'call' : 'calls'} without a price` : null,
      href: href('requests')},
    {id: 'requests', label: 'Requests', value: int(s.requests), href: href('requests')},
    {id: 'avg-cost', label: 'Avg cost per request', value: priced ? usd(s.avg_cost_usd) : (none ? '–' : '$?'),
      note: s.unpriced && priced ? 'of the priced calls' : null},
    {id: 'error-rate', label: 'Error rate', value: none ? '–' : pct(s.error_pct),
      note: `${int(s.errors)} ${s.errors === 1 ? 'error' : 'errors'}`, href: href('requests', {status: 'error'})},
    {id: 'p50-latency', label: 'Latency p50', value: ms(s.p50_latency_ms)},
    {id: 'p95-latency', label: 'Latency p95', value: ms(s.p95_latency_ms)},
    {id: 'p50-ttft', label: 'TTFT p50', value: ms(s.p50_ttft_ms), note: 'streamed calls'},
    {id: 'p95-ttft', label: 'TTFT p95', value: ms(s.p95_ttft_ms), note: 'streamed calls'},
    {id: 'tokens-in', label: 'Tokens in', value: int(s.input_tokens)},
    {id: 'tokens-out', label: 'Tokens out', value: int(s.output_tokens)},
    {id: 'cache-hit-rate', label: 'Cache hit rate', value: pct(s.cache_hit_pct),
      note: `${int(s.cache_hits)} of ${int(s.cache_hits + s.cache_misses)} cached calls`, href: href('limits')},
    {id: 'saved', label: 'Saved by the cache', value: usd(s.saved_usd), href: href('limits')},
  ];
}

/** Spend per bucket, one stacked bar per model (the top models by cost, then `other`), in the buckets of `labels`;
 * a note says how many calls the bars leave out for want of a price. */
function spendChart(labels, series, rows, unpriced) {
  const index = new Map(series.map((row, i) => [row.bucket, i]));
  const models = new Map();  // model -> data, in rank order (the rows come so)
  for (const row of [...rows].sort((a, b) => a.rank - b.rank)) {
    const name = row.model === null ? '(no model)' : row.model;
    if (!models.has(name)) models.set(name, labels.map(() => 0));
    models.get(name)[index.get(row.bucket)] = row.cost_usd === null ? null : Number(row.cost_usd);
  }
  const datasets = coloured([...models].map(([label, data]) => ({label, data})));
  const box = chart('Spend by model', {type: 'bar', data: {labels, datasets}, options: {stacked: true}},
    {yFormat: usd, height: 280});
  if (unpriced) {
    box.append(el('p', {class: 'note muted'}, `${int(unpriced)} ${unpriced === 1 ? 'call' : 'calls'} without a price ` +
      `${unpriced === 1 ? 'is' : 'are'} not in the bars.`));
  }
  return box;
}
