// The users page: who spent what (queries.users via /api/users), each user linking to their requests.
import {el, empty, href, int, ms, pct, rowsOf, api, section, table, time, usdPartial} from '../ui.js';

const NO_USER = '(no user)';

export async function render() {
  const rows = rowsOf((await api('users')).users);
  if (!rows.length) return section('Users', empty('No calls in this time range and filters.'));
  const anonymous = rows.some((r) => r.user === null);
  const columns = [
    // Calls without a user get no link: no filter selects "no user" (user= matches a name).
    {key: 'user', label: 'User', format: (v) => v ?? NO_USER, href: (r) => r.user === null ? null :
      href('requests', {user: r.user})},
    {key: 'requests', label: 'Requests', format: int, num: true},
    {key: 'cost_usd', label: 'Cost', format: (v, r) => usdPartial(v, r.unpriced), num: true},
    {key: 'avg_latency_ms', label: 'Avg latency', format: ms, num: true},
    {key: 'p95_latency_ms', label: 'p95 latency', format: ms, num: true},
    {key: 'error_pct', label: 'Errors', format: (v) => pct(v), num: true},
    {key: 'models', label: 'Model mix', format: (v) => el('span', {class: 'model-mix'}, v ?? '–')},
    {key: 'last_seen', label: 'Last seen (UTC)', format: time},
  ];
  const notes = [];
  if (anonymous) notes.push(`${NO_USER}: calls sent without Helicone-User-Id; no filter selects them, so no link.`);
  if (rows.some((r) => Number(r.unpriced) > 0)) notes.push('+? : some of the user\'s calls have no known price.');
  return section(`Users (${int(rows.length)})`, table(columns, rows, {rowClass: (r) => r.user === null ? 'muted' : null}),
    notes.map((n) => el('p', {class: 'note muted'}, n)));
}
