// Metric series as the app keeps them: numbers in columns, one per (source, name, rank),
// grown by the live stream and aligned on one x axis for the plot.
import type { MetricSeriesJson } from "./api";
import { num } from "./format";

export interface Series {
  name: string;
  source: string;
  rank: number;
  steps: number[];
  values: number[];
  times: number[];
  /** Points the server has in the asked range; more than steps.length when thinned. */
  total: number;
  thinned: boolean;
  method?: string;
  /** Steps per bucket of the server's thinning (when thinned). */
  bucketSteps?: number;
}

export function seriesKey(s: { source?: string; name: string; rank?: number }): string {
  return `${s.source ?? "USER"}|${s.name}|${s.rank ?? 0}`;
}

/** A series of the API (int64 as strings, NaN as "NaN", defaults omitted) as numbers. */
export function fromJson(j: MetricSeriesJson): Series {
  const steps = (j.steps ?? []).map(num);
  return {
    name: j.name,
    source: j.source ?? "USER",
    rank: j.rank ?? 0,
    steps,
    values: (j.values ?? []).map(num),
    times: (j.times ?? []).map(num),
    total: j.totalPoints !== undefined ? num(j.totalPoints) : steps.length,
    thinned: j.thinned ?? false,
    method: j.method,
    bucketSteps: j.bucketSteps !== undefined ? num(j.bucketSteps) : undefined,
  };
}

/** Adds the points of `more` (new points of a live stream) to the series in `into`, making
 * the series that are new; returns a new map (the old one is not changed). */
export function appendSeries(into: ReadonlyMap<string, Series>, more: ReadonlyArray<MetricSeriesJson>): Map<string, Series> {
  const out = new Map(into);
  for (const j of more) {
    const add = fromJson(j);
    const key = seriesKey(add);
    const have = out.get(key);
    if (!have) {
      out.set(key, add);
      continue;
    }
    out.set(key, {
      ...have,
      steps: have.steps.concat(add.steps),
      values: have.values.concat(add.values),
      times: have.times.concat(add.times),
      total: have.total + add.steps.length,
    });
  }
  return out;
}

/** The series in `m`, grouped by chart (source and name), ranks in order, charts by name. */
export function groupByChart(m: ReadonlyMap<string, Series>): Array<{ source: string; name: string; series: Series[] }> {
  const groups = new Map<string, { source: string; name: string; series: Series[] }>();
  for (const s of m.values()) {
    const k = `${s.source}|${s.name}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { source: s.source, name: s.name, series: [] }));
    g.series.push(s);
  }
  const out = [...groups.values()];
  out.forEach((g) => g.series.sort((a, b) => a.rank - b.rank));
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * One x column (the union of every series' x, ascending) and one y column per series with
 * null where a series has no point: what uPlot plots. A series that logged the same x twice
 * is plotted with the last value at that x (a table shows every point).
 */
export function align(xs: ReadonlyArray<ReadonlyArray<number>>, ys: ReadonlyArray<ReadonlyArray<number>>): [number[], ...(number | null)[][]] {
  const set = new Set<number>();
  for (const x of xs) for (const v of x) if (Number.isFinite(v)) set.add(v);
  const x = [...set].sort((a, b) => a - b);
  const index = new Map<number, number>();
  x.forEach((v, i) => index.set(v, i));
  const cols = ys.map((y, k) => {
    const col: (number | null)[] = new Array(x.length).fill(null);
    const xk = xs[k];
    for (let i = 0; i < xk.length; i++) {
      const at = index.get(xk[i]);
      if (at !== undefined) col[at] = Number.isFinite(y[i]) ? y[i] : null;
    }
    return col;
  });
  return [x, ...cols];
}

/** For a log scale: values that cannot be drawn there (zero, negative) become gaps. */
export function positiveOnly(col: ReadonlyArray<number | null>): (number | null)[] {
  return col.map((v) => (v !== null && v > 0 ? v : null));
}
