// A report's forms that need no page: durations as people read them and
// the CSV of a REPORT_RESP, with the server's columns and rules
// (src/core/sb_reportfmt.c renders the same for sbctl and the HTTP side).

// The CSV's metric columns, as the server's renderer names them.
const METRICS = [
  'conversations',
  'closed',
  'first_responses',
  'first_response_median_ms',
  'first_response_p90_ms',
  'resolution_median_ms',
  'resolution_p90_ms',
  'assigned',
  'queue_wait_median_ms',
  'queue_wait_p90_ms',
  'csat_requests',
  'csat_responses',
];

/** ms as people read a duration: 0.4s, 45s, 1m05s, 2h03m, 3d04h. */
export function duration(ms) {
  ms = Math.max(0, Number(ms) || 0);
  const s = Math.floor(ms / 1000);
  const two = (n) => String(n).padStart(2, '0');
  if (ms < 10000) return `${s}.${Math.floor((ms % 1000) / 100)}s`;
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${two(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d${two(Math.floor(s / 3600) % 24)}h`;
}

/** The report as CSV (RFC 4180, the server's columns; the last row, keys
 * "*", is the total). */
export function reportCsv(r) {
  const keys = r.by || [];
  const field = (v) => {
    const s = String(v ?? '');
    const formula = /^[=+\-@]/.test(s);
    return formula || /[",\r\n]/.test(s) ? `"${formula ? "'" : ''}${s.replace(/"/g, '""')}"` : s;
  };
  const line = (cells) => `${cells.map(field).join(',')}\r\n`;
  const row = (x, total) => [...keys.map((k) => (total ? '*' : x[k] || '')), ...METRICS.map((m) => Number(x[m] || 0)), (x.csat_average || 0).toFixed(4), (x.csat_response_rate || 0).toFixed(4)];
  let out = line([...keys, ...METRICS, 'csat_average', 'csat_response_rate']);
  for (const x of r.rows || []) out += line(row(x, false));
  if (r.total) out += line(row(r.total, true));
  return out;
}
