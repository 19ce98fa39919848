// The workbench's report forms (web/src/pages/reportfmt.js): durations as
// the table shows them, and the CSV of a report, byte for byte what the
// server's renderer makes of the same figures (the CSV of
// tests/store/test_report.c's report by agent).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { duration, reportCsv } from '../../../web/src/pages/reportfmt.js';

const MIN = 60000;

test('durations: tenths under 10 s, then s, m s, h m, d h', () => {
  assert.equal(duration(0), '0.0s');
  assert.equal(duration(450), '0.4s');
  assert.equal(duration(9999), '9.9s');
  assert.equal(duration(45000), '45s');
  assert.equal(duration(7 * MIN), '7m00s');
  assert.equal(duration(65 * 1000), '1m05s');
  assert.equal(duration(60 * MIN), '1h00m');
  assert.equal(duration(123 * MIN), '2h03m');
  assert.equal(duration(76 * 60 * MIN), '3d04h');
  assert.equal(duration(-5), '0.0s');
});

const row = (o) => ({
  desk: '', group: '', agent: '', day: '',
  conversations: 0, closed: 0, first_responses: 0, first_response_median_ms: 0, first_response_p90_ms: 0,
  resolution_median_ms: 0, resolution_p90_ms: 0, assigned: 0, queue_wait_median_ms: 0, queue_wait_p90_ms: 0,
  csat_requests: 0, csat_responses: 0, csat_average: 0, csat_response_rate: 0, ...o,
});

test('CSV: the server’s columns and figures, the total last with keys "*"', () => {
  const r = {
    by: ['agent'],
    rows: [
      row({ conversations: 1, closed: 1, resolution_median_ms: 5 * MIN, resolution_p90_ms: 5 * MIN, csat_requests: 1, csat_responses: 1, csat_average: 4, csat_response_rate: 1 }),
      row({ agent: 'a1', conversations: 2, closed: 2, first_responses: 2, first_response_median_ms: 7 * MIN, first_response_p90_ms: 12 * MIN, resolution_median_ms: 30 * MIN, resolution_p90_ms: 60 * MIN, assigned: 2, queue_wait_median_ms: 4 * MIN, queue_wait_p90_ms: 10 * MIN, csat_requests: 2, csat_responses: 2, csat_average: 4, csat_response_rate: 1 }),
      row({ agent: 'a2', conversations: 2, closed: 1, first_responses: 2, first_response_median_ms: MIN, first_response_p90_ms: 10 * MIN, resolution_median_ms: 20 * MIN, resolution_p90_ms: 20 * MIN, assigned: 2, queue_wait_p90_ms: 2 * MIN, csat_requests: 1 }),
    ],
    total: row({ conversations: 5, closed: 4, first_responses: 4, first_response_median_ms: 7 * MIN, first_response_p90_ms: 12 * MIN, resolution_median_ms: 20 * MIN, resolution_p90_ms: 60 * MIN, assigned: 4, queue_wait_median_ms: 2 * MIN, queue_wait_p90_ms: 10 * MIN, csat_requests: 4, csat_responses: 3, csat_average: 4, csat_response_rate: 0.75 }),
  };
  assert.equal(
    reportCsv(r),
    'agent,conversations,closed,first_responses,first_response_median_ms,first_response_p90_ms,resolution_median_ms,resolution_p90_ms,' +
      'assigned,queue_wait_median_ms,queue_wait_p90_ms,csat_requests,csat_responses,csat_average,csat_response_rate\r\n' +
      ',1,1,0,0,0,300000,300000,0,0,0,1,1,4.0000,1.0000\r\n' +
      'a1,2,2,2,420000,720000,1800000,3600000,2,240000,600000,2,2,4.0000,1.0000\r\n' +
      'a2,2,1,2,60000,600000,1200000,1200000,2,0,120000,1,0,0.0000,0.0000\r\n' +
      '*,5,4,4,420000,720000,1200000,3600000,4,120000,600000,4,3,4.0000,0.7500\r\n',
  );
});

test('CSV: quotes, and a quote mark before what a spreadsheet would run', () => {
  const csv = reportCsv({ by: ['desk', 'group'], rows: [row({ desk: 'a,"b"', group: '=SUM(A1)' })], total: null });
  assert.equal(csv.split('\r\n')[1].split(',0,')[0], '"a,""b""","\'=SUM(A1)"');
  assert.equal(reportCsv({ by: [], rows: [], total: row({}) }).split('\r\n')[1], '0,0,0,0,0,0,0,0,0,0,0,0,0.0000,0.0000');
});
