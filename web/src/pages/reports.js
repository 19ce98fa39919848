// The workbench's Reports view (administrators: the REPORT frame answers
// only them): a span of days in a time zone, the keys of the rows (desk,
// group, agent, day) and filters; the answer as a table (times as people
// read them, medians and 90th percentiles side by side) and as a CSV
// download with the server's columns (sbctl report --format csv has the
// same).
import { h, errText, setText } from './common.js';
import { t } from './i18n.js';
import { duration, reportCsv } from './reportfmt.js';

const KEYS = ['desk', 'group', 'agent', 'day'];

// Today in the browser's zone, as YYYY-MM-DD.
function today() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

export class ReportsView {
  /** o: client, root (the #reports section), onClose(). */
  constructor(o) {
    this.o = o;
    const root = o.root;
    this.root = root;
    this.form = root.querySelector('form');
    this.from = root.querySelector('#rfrom');
    this.to = root.querySelector('#rto');
    this.tz = root.querySelector('#rtz');
    this.agent = root.querySelector('#ragent');
    this.group = root.querySelector('#rgroup');
    this.err = root.querySelector('.err');
    this.out = root.querySelector('.reportout');
    this.csvBtn = root.querySelector('#rcsv');
    this.last = null;
    this.from.value = this.to.value = today();
    try {
      this.tz.value = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    } catch (e) {
      this.tz.value = 'UTC';
    }
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.run();
    });
    this.csvBtn.addEventListener('click', () => this.download());
    root.querySelector('#reportsclose').addEventListener('click', () => o.onClose());
    root.addEventListener('keydown', (ev) => ev.key === 'Escape' && o.onClose());
  }

  keys() {
    return KEYS.filter((k) => this.root.querySelector(`input[name=by][value=${k}]`).checked);
  }

  async run() {
    setText(this.err, '');
    this.root.dataset.state = 'running';
    try {
      const r = await this.o.client.report({
        from: this.from.value,
        to: this.to.value || this.from.value,
        tz: this.tz.value.trim(),
        by: this.keys(),
        agent: this.agent.value.trim(),
        group: this.group.value.trim(),
      });
      this.last = r;
      this.render(r);
      this.csvBtn.disabled = false;
      this.root.dataset.state = 'done';
    } catch (e) {
      this.last = null;
      this.csvBtn.disabled = true;
      this.out.textContent = '';
      // The server's reason (which date, which zone) is for an
      // administrator to read: shown as it came.
      setText(this.err, e.code === 'ERR_FORBIDDEN' ? t('reports.admin') : e.text ? `${errText(e)} (${e.text})` : errText(e));
      this.root.dataset.state = 'error';
    }
  }

  render(r) {
    const keys = r.by || [];
    const pair = (n, med, p90) => (Number(n) ? `${duration(med)} / ${duration(p90)}` : '–');
    const cells = (x, total) => [
      ...keys.map((k, i) => (total ? (i === 0 ? t('reports.total') : '') : k === 'agent' && !x.agent ? t('reports.noagent') : x[k] || '')),
      String(Number(x.conversations || 0)),
      String(Number(x.closed || 0)),
      pair(x.first_responses, x.first_response_median_ms, x.first_response_p90_ms),
      pair(x.closed, x.resolution_median_ms, x.resolution_p90_ms),
      pair(x.assigned, x.queue_wait_median_ms, x.queue_wait_p90_ms),
      Number(x.csat_responses) ? (x.csat_average || 0).toFixed(2) : '–',
      `${Number(x.csat_responses || 0)} / ${Number(x.csat_requests || 0)} (${Math.round((x.csat_response_rate || 0) * 100)}%)`,
    ];
    const head = [
      ...keys.map((k) => t(`reports.by.${k}`)),
      t('reports.col.conversations'),
      t('reports.col.closed'),
      t('reports.col.first'),
      t('reports.col.resolution'),
      t('reports.col.wait'),
      t('reports.col.csat'),
      t('reports.col.rated'),
    ];
    const nKeys = keys.length;
    // The head's cells head columns; a row's key cells head their row.
    const cell = (v, i, kind) => {
      if (kind === 'head') return h('th', { scope: 'col', text: v });
      if (kind === 'row' && i < nKeys) return h('th', { scope: 'row', text: v });
      return h('td', { text: v });
    };
    const tr = (vals, kind) => h(kind === 'total' ? 'tr.total' : 'tr', null, vals.map((v, i) => cell(v, i, kind)));
    const rows = (r.rows || []).map((x) => tr(cells(x, false), 'row'));
    const caption = t('reports.caption', this.from.value, this.to.value || this.from.value, r.tz || 'UTC');
    const table = h(
      'table.report',
      null,
      h('caption', { text: caption }),
      h('thead', null, tr(head, 'head')),
      h('tbody', null, rows),
      r.total ? h('tfoot', null, tr(cells(r.total, true), 'total')) : null,
    );
    const none = !Number(r.total && r.total.conversations) ? h('p.sub.none', { text: t('reports.none') }) : null;
    this.out.replaceChildren(table, ...(none ? [none] : []));
  }

  download() {
    if (!this.last) return;
    const blob = new Blob([reportCsv(this.last)], { type: 'text/csv;charset=utf-8' });
    const a = h('a', { href: URL.createObjectURL(blob), download: `report-${this.from.value}-${this.to.value || this.from.value}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }
}
