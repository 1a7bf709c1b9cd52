// Curve smoothing and the note that says a series was thinned by the server.

/**
 * Exponential moving average with TensorBoard's debiasing: with weight 0 the values come
 * back unchanged, with weight 0.99 they follow slowly. Non-finite values are kept as they
 * are and do not enter the average; `null` (a gap) stays a gap.
 */
export function smoothEma(values: ReadonlyArray<number | null>, weight: number): (number | null)[] {
  if (weight <= 0) return values.slice();
  const w = Math.min(weight, 0.999);
  let last = 0;
  let n = 0;
  return values.map((v) => {
    if (v === null || !Number.isFinite(v)) return v;
    last = last * w + (1 - w) * v;
    n++;
    return last / (1 - Math.pow(w, n));
  });
}

/** What the server said about one series it sent. */
export interface SeriesCompleteness {
  shown: number;
  total: number;
  thinned: boolean;
  method?: string;
  bucketSteps?: number;
}

/** The note under a chart: "" when every point is shown, otherwise how many of how many and
 * how they were picked, e.g. "2,000 of 1,000,000 points shown (min/max per bucket of 2,048
 * steps); zoom in for every point". Adds up the series of one chart. */
export function thinningNote(series: ReadonlyArray<SeriesCompleteness>): string {
  const thinned = series.filter((s) => s.thinned);
  if (thinned.length === 0) return "";
  const fmt = (n: number) => n.toLocaleString("en-US");
  const shown = series.reduce((a, s) => a + s.shown, 0);
  const total = series.reduce((a, s) => a + Math.max(s.total, s.shown), 0);
  const methods = [...new Set(thinned.map((s) => methodLabel(s.method)))];
  const widths = [...new Set(thinned.map((s) => s.bucketSteps))];
  // One bucket width for the whole chart (ranks of the same length): say it.
  if (methods.length === 1 && widths.length === 1 && widths[0] !== undefined && widths[0] > 0) {
    methods[0] += ` of ${fmt(widths[0])} step${widths[0] === 1 ? "" : "s"}`;
  }
  return `${fmt(shown)} of ${fmt(total)} points shown (${methods.join(", ")}); zoom in for every point`;
}

function methodLabel(method: string | undefined): string {
  switch ((method ?? "").toLowerCase()) {
    case "minmax":
      return "min/max per bucket";
    case "lttb":
      return "largest-triangle buckets";
    case "":
      return "thinned";
    default:
      return method!;
  }
}

/** How many points to ask for a plot `widthPx` wide: about two per pixel column, within the
 * server's limits (at most 20,000). */
export function pointsForWidth(widthPx: number): number {
  return Math.max(200, Math.min(20000, Math.round(widthPx * 2)));
}
