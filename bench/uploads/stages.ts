/**
 * The service's own split of an upload's time, read from its `fixitfy_upload_stage_seconds` histogram (README,
 * Metrics): with `BENCH_UPLOAD_STAGES=1` the uploads suite runs the service with metrics on and adds each case's mean
 * per step to its end-to-end row's note, so a run says where the time went without timing marks in a patched build.
 *
 * Off by default: `METRICS_TOKEN` also turns on prom-client's default collectors (an event-loop delay monitor among
 * them), so the service measured would not be the one of the tables before. Side by side (the same build with and
 * without the token, 14 alternated rounds of five uploads after a pause) the ratio was 0.989 for the 1080p JPEG and
 * 0.981 for the 16×16 PNG, within the noise (docs/performance.md, twenty-seventh session).
 */

/** The token the suite gives the service when the split is asked for (16–512 printable characters). */
export const STAGES_METRICS_TOKEN = 'bench-upload-stages-token';

/** Whether this run asks for the split. */
export const STAGES_ON = process.env.BENCH_UPLOAD_STAGES === '1';

/** Per step, in the order the service first reported them: total seconds and how many uploads reached it. */
export type StageTotals = Map<string, { sum: number; count: number }>;

const SERIES = /^fixitfy_upload_stage_seconds_(sum|count)\{([^}]*)\} (\S+)$/;
const STAGE_LABEL = /(?:^|,)stage="([^"]+)"/;

/** The totals in a scrape's text (every process's series added up). */
export function parseStageTotals(text: string): StageTotals {
  const totals: StageTotals = new Map();
  for (const line of text.split('\n')) {
    const series = SERIES.exec(line);
    const stage = series && STAGE_LABEL.exec(series[2])?.[1];
    if (!series || !stage) {
      continue;
    }
    const entry = totals.get(stage) ?? { sum: 0, count: 0 };
    entry[series[1] as 'sum' | 'count'] += Number(series[3]);
    totals.set(stage, entry);
  }
  return totals;
}

/** The service's stage totals now (`GET /metrics` with the suite's token). */
export async function scrapeStages(base: string): Promise<StageTotals> {
  const res = await fetch(`${base}/metrics`, {
    headers: { authorization: `Bearer ${STAGES_METRICS_TOKEN}` },
  });
  if (res.status !== 200) {
    throw new Error(`GET /metrics answered ${res.status}`);
  }
  return parseStageTotals(await res.text());
}

/** Adds what happened between two scrapes to `into` (a case's runs together). */
export function addStageDelta(into: StageTotals, before: StageTotals, after: StageTotals): void {
  for (const [stage, { sum, count }] of after) {
    const was = before.get(stage) ?? { sum: 0, count: 0 };
    const entry = into.get(stage) ?? { sum: 0, count: 0 };
    entry.sum += sum - was.sum;
    entry.count += count - was.count;
    into.set(stage, entry);
  }
}

/** "admission 2.3, receive 0.1, … ms": each step's mean over the uploads that reached it, or '' with none. */
export function describeStages(totals: StageTotals): string {
  const steps = [...totals].filter(([, { count }]) => count > 0);
  if (steps.length === 0) {
    return '';
  }
  const means = steps.map(([stage, { sum, count }]) => `${stage} ${((sum / count) * 1000).toFixed(2)}`);
  return `the service's steps (mean of every upload of the case, fixitfy_upload_stage_seconds): ${means.join(', ')} ms`;
}
