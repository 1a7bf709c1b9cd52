// A sweep's trials as the sweep page shows them: ranked by the primary metric (best first),
// each parameter in its own column, and the early stop written out.
import type { ParameterValue, SweepTrial, TrialStop } from "./api";
import { metricValue, num } from "./format";

/** The trial's index (int64 in JSON: a string, absent for 0). */
export function trialIndex(t: SweepTrial): number {
  return num(t.index ?? 0);
}

/** The trial's result as a number, or undefined while it logged no finite value. */
export function trialResult(t: SweepTrial): number | undefined {
  if (t.result === undefined || t.result === null) return undefined;
  const v = num(t.result);
  return Number.isFinite(v) ? v : undefined;
}

/** The trials best first: by result (highest first for MAXIMIZE, lowest first for
 * MINIMIZE; the lower index among equal ones, as droverd picks the best trial), then the
 * trials without a result by index. Does not change `trials`. */
export function rankTrials(trials: ReadonlyArray<SweepTrial>, goal: string | undefined): SweepTrial[] {
  const sign = goal === "MINIMIZE" ? 1 : -1;
  return [...trials].sort((a, b) => {
    const ra = trialResult(a);
    const rb = trialResult(b);
    if (ra !== undefined && rb !== undefined && ra !== rb) return sign * (ra - rb);
    if (ra === undefined && rb !== undefined) return 1;
    if (ra !== undefined && rb === undefined) return -1;
    return trialIndex(a) - trialIndex(b);
  });
}

/** Every parameter name of the trials, sorted (one column each). */
export function parameterNames(trials: ReadonlyArray<SweepTrial>): string[] {
  const names = new Set<string>();
  for (const t of trials) for (const n of Object.keys(t.parameters ?? {})) names.add(n);
  return [...names].sort();
}

/** A parameter value as the table shows it: a number short but exact enough to compare, a
 * string as is; "" when absent. */
export function parameterText(v: ParameterValue | undefined): string {
  if (!v) return "";
  if (v.text !== undefined) return v.text;
  if (v.number !== undefined) return metricValue(num(v.number));
  return "";
}

/** The goal for people: "maximize" / "minimize". */
export function goalText(goal: string | undefined): string {
  if (goal === "MAXIMIZE") return "maximize";
  if (goal === "MINIMIZE") return "minimize";
  return "";
}

/** The early-termination rule that stopped a trial and where: "bandit at interval 3 (step
 * 20): 0.41 < 0.5"; "" for a trial not stopped. */
export function stopText(stop: TrialStop | undefined, goal: string | undefined): string {
  if (!stop?.rule) return "";
  const rule = stop.rule.replace(/_/g, " ");
  const where = `at interval ${num(stop.interval ?? 0)} (step ${num(stop.step ?? 0)})`;
  if (stop.value === undefined && stop.threshold === undefined) return `${rule} ${where}`;
  const op = goal === "MINIMIZE" ? ">" : "<";
  return `${rule} ${where}: ${metricValue(num(stop.value ?? 0))} ${op} ${metricValue(num(stop.threshold ?? 0))}`;
}
