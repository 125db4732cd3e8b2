/**
 * The shape every benchmark suite reports in, so `npm run bench` can print one table (issue 14).
 *
 * A suite is a folder `bench/<name>/` with a `rows.ts` that exports `suite: BenchSuite`. `bench/run-all.ts` finds
 * every such file, runs the suites one after another (never two at once, so they do not share the CPU), and
 * prints each row with its ratio and goal beside it.
 */

/** Which way a ratio must go to meet its goal. */
export type GoalDirection = 'at-most' | 'at-least';

export interface BenchRow {
  /** What was measured, e.g. "GET /images/… 304 (req/s)". */
  label: string;
  /** Our median, in `unit`. */
  value: number;
  /** What the baseline is, e.g. "nginx, same file". */
  baselineLabel: string;
  /** The baseline's median in the same run, in `unit`. */
  baseline: number;
  /** e.g. "req/s", "ms", "MB". */
  unit: string;
  /** value / baseline; the goal is a bound on this. */
  ratio: number;
  /** The bound on `ratio` that the issue sets, or undefined when the row is informational. */
  goal?: { direction: GoalDirection; ratio: number };
  /** Free text shown after the row, e.g. "p99 4.1 ms; 5 runs". */
  note?: string;
}

export interface BenchSuiteOptions {
  /** Rounds per row; each row reports the median of its rounds. */
  runs: number;
}

export interface BenchSuite {
  /** Short name shown as the section heading, e.g. "direct links". */
  name: string;
  run(options: BenchSuiteOptions): Promise<BenchRow[]>;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) {
    throw new Error('median of no values');
  }
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function meetsGoal(row: BenchRow): boolean | undefined {
  if (!row.goal) {
    return undefined;
  }
  return row.goal.direction === 'at-most' ? row.ratio <= row.goal.ratio : row.ratio >= row.goal.ratio;
}

export function row(fields: Omit<BenchRow, 'ratio'>): BenchRow {
  return { ...fields, ratio: fields.value / fields.baseline };
}

function fmt(n: number): string {
  if (n >= 100) {
    return n.toFixed(0);
  }
  if (n >= 10) {
    return n.toFixed(1);
  }
  return n.toFixed(n >= 1 ? 2 : 3);
}

/** A Markdown table, so the same text goes to the terminal, the README and a note. */
export function renderTable(sections: ReadonlyArray<{ name: string; rows: readonly BenchRow[] }>): string {
  const lines = [
    '| suite | measure | ours | baseline | ratio | goal | met |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const section of sections) {
    for (const r of section.rows) {
      const met = meetsGoal(r);
      const goal = r.goal ? `${r.goal.direction === 'at-most' ? '≤' : '≥'} ${r.goal.ratio}×` : '—';
      lines.push(
        `| ${section.name} | ${r.label}${r.note ? ` (${r.note})` : ''} | ${fmt(r.value)} ${r.unit} | ` +
          `${r.baselineLabel}: ${fmt(r.baseline)} ${r.unit} | ${r.ratio.toFixed(2)}× | ${goal} | ` +
          `${met === undefined ? '—' : met ? 'yes' : 'no'} |`,
      );
    }
  }
  return lines.join('\n');
}
