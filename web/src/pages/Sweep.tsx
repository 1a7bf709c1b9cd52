import { useEffect, useMemo, useState } from "preact/hooks";
import { api, jobPath, query, sweepPath, type MetricsResponse, type Sweep, type SweepTrial } from "../api";
import { age, dateTime, isTerminal, metricValue, num, reasonText } from "../format";
import { Chart, color } from "../components/Chart";
import { Link, runHref } from "../components/Link";
import { StateBadge } from "../components/StateBadge";
import { fromJson, type Series } from "../series";
import { pointsForWidth, thinningNote } from "../smooth";
import { useInterval, useNow } from "../hooks";
import { goalText, parameterNames, parameterText, rankTrials, stopText, trialIndex, trialResult } from "../sweep";

/** The most trials whose curves are overlaid (the best ones). */
const MAX_CURVES = 20;
const REFRESH_MS = 3000;

/** A sweep: its state, primary metric and goal, the best trial, the trials ranked best first
 * with their parameters and results, and the best trials' primary-metric curves overlaid
 * (each trial's rank 0). */
export function SweepPage(props: { id: string }) {
  const [sweep, setSweep] = useState<Sweep | undefined>(undefined);
  const [error, setError] = useState("");
  const [curves, setCurves] = useState<Array<{ trial: SweepTrial; series: Series[] }>>([]);
  const [smoothing, setSmoothing] = useState(0);
  const [logScale, setLogScale] = useState(false);
  const [xRange, setXRange] = useState<[number, number] | undefined>(undefined);
  const now = useNow(1000);

  const load = async () => {
    try {
      setSweep(await api<Sweep>(sweepPath(props.id)));
      setError("");
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => {
    setSweep(undefined);
    void load();
  }, [props.id]);
  useInterval(async () => {
    if (!isTerminal(sweep?.status?.state)) await load();
  }, REFRESH_MS, [props.id, sweep?.status?.state]);

  const goal = sweep?.spec?.primaryMetricGoal;
  const metric = sweep?.spec?.primaryMetricName ?? "";
  const ranked = useMemo(() => rankTrials(sweep?.trials ?? [], goal), [sweep, goal]);
  const names = useMemo(() => parameterNames(ranked), [ranked]);
  const charted = ranked.filter((t) => t.jobId).slice(0, MAX_CURVES);
  const chartKey = charted.map((t) => `${t.jobId}:${t.jobState}:${t.intervals ?? 0}`).join(",");

  // Each charted trial's rank-0 series of the primary metric; again while its trials log.
  const loadCurves = async () => {
    if (!metric || charted.length === 0) return;
    const width = pointsForWidth(document.body.clientWidth);
    const got = await Promise.all(charted.map((t) =>
      api<MetricsResponse>(`${jobPath(t.jobId!)}/metrics${query([["name", metric], ["source", "USER"], ["rank", 0], ["maxPoints", width]])}`)
        .then((r) => ({ trial: t, series: (r.series ?? []).map(fromJson).filter((s) => s.name === metric && s.rank === 0) }))
        .catch(() => ({ trial: t, series: [] as Series[] }))));
    setCurves(got);
  };
  useEffect(() => void loadCurves(), [metric, chartKey]);

  const lines = useMemo(() => curves.flatMap(({ trial, series }) =>
    series.map((s) => ({ label: `trial ${trialIndex(trial)}`, x: s.steps, y: s.values }))), [curves]);
  const note = thinningNote(curves.flatMap((c) => c.series).map((s) => ({ shown: s.steps.length, total: s.total, thinned: s.thinned, method: s.method, bucketSteps: s.bucketSteps })));
  const lineOf = (t: SweepTrial) => lines.findIndex((l) => l.label === `trial ${trialIndex(t)}`);

  if (sweep === undefined) {
    return <section><h1>Sweep {props.id}</h1>{error ? <p class="error" role="alert">{error}</p> : <p class="muted">Loading…</p>}</section>;
  }
  const st = sweep.status ?? {};
  const spec = sweep.spec ?? {};
  const best = sweep.bestTrialIndex !== undefined || sweep.bestResult !== undefined
    ? (sweep.trials ?? []).find((t) => trialIndex(t) === num(sweep.bestTrialIndex ?? 0))
    : undefined;

  return (
    <section>
      <h1>Sweep {sweep.id}{spec.name && <span class="muted"> {spec.name}</span>}</h1>
      {error && <p class="error" role="alert">{error}</p>}
      <dl class="facts" data-testid="sweep-facts">
        <dt>state</dt>
        <dd><StateBadge state={st.state} /> <span class="reason" title={st.message}>{reasonText(st.state, st.reason)}</span>{st.message && <span class="muted"> {st.message}</span>}</dd>
        <dt>primary metric</dt>
        <dd data-testid="primary-metric"><strong>{metric}</strong> ({goalText(goal)})</dd>
        <dt>sampling</dt>
        <dd>{(spec.sampling?.method ?? "").toLowerCase()}{spec.sampling?.seed ? ` (seed ${spec.sampling.seed})` : ""}</dd>
        <dt>trials</dt>
        <dd>{num(sweep.trialCount ?? 0)}{spec.maxTotalTrials ? ` of at most ${spec.maxTotalTrials}` : ""}{spec.maxConcurrentTrials ? `, ${spec.maxConcurrentTrials} at once` : ""}</dd>
        <dt>best trial</dt>
        <dd data-testid="best-trial">{best ? (
          <>trial {trialIndex(best)} (<Link href={runHref(best.jobId ?? "")}>{best.jobId}</Link>): {metric} = {metricValue(num(sweep.bestResult ?? best.result ?? 0))}
            {names.length > 0 && <span class="muted"> with {names.map((n) => `${n}=${parameterText(best.parameters?.[n])}`).join(", ")}</span>}</>
        ) : <span class="muted">none yet (no trial logged {metric})</span>}</dd>
        <dt>owner</dt>
        <dd>{sweep.owner}</dd>
        <dt>submitted</dt>
        <dd title={dateTime(sweep.createTime)}>{age(sweep.createTime, now)}</dd>
      </dl>

      {metric && lines.length > 0 && (
        <figure class="metric" data-metric={metric} data-testid="sweep-curves">
          <figcaption>
            <strong>{metric}</strong> <span class="muted small">{lines.length} trial(s){ranked.length > MAX_CURVES ? ` (the best ${MAX_CURVES})` : ""}, rank 0; drag to zoom, double-click to zoom out</span>
            {xRange && <button class="link" onClick={() => setXRange(undefined)}>zoom out</button>}
          </figcaption>
          <div class="toolbar">
            <label>smoothing <input type="range" min="0" max="0.99" step="0.01" value={smoothing} onInput={(e) => setSmoothing(Number((e.target as HTMLInputElement).value))} /></label>
            <label><input type="checkbox" checked={logScale} onChange={(e) => setLogScale((e.target as HTMLInputElement).checked)} /> log scale</label>
          </div>
          <Chart title={metric} lines={lines} smoothing={smoothing} logScale={logScale} height={360} xRange={xRange} onZoom={(r) => setXRange(r ?? undefined)} />
          {note && <p class="note">{note}</p>}
        </figure>
      )}

      {ranked.length === 0 ? <p class="muted">No trial started yet.</p> : (
        <table class="grid runs" data-testid="sweep-trials">
          <thead>
            <tr><th>rank</th><th>trial</th><th>run</th><th>state</th>{names.map((n) => <th class="param">{n}</th>)}<th>{metric}</th><th>stopped early</th></tr>
          </thead>
          <tbody>
            {ranked.map((t, i) => {
              const r = trialResult(t);
              const line = lineOf(t);
              const stop = stopText(t.stop, goal);
              return (
                <tr data-trial={trialIndex(t)} data-job={t.jobId} class={best && trialIndex(best) === trialIndex(t) ? "best" : ""}>
                  <td>{r !== undefined ? i + 1 : ""}</td>
                  <td>{line >= 0 && <span class="swatch" style={{ background: color(line) }} />}{trialIndex(t)}</td>
                  <td>{t.jobId && <Link href={runHref(t.jobId)}>{t.jobId}</Link>}</td>
                  <td><StateBadge state={t.jobState} /></td>
                  {names.map((n) => <td class="param" data-param={n}>{parameterText(t.parameters?.[n])}</td>)}
                  <td class="result" title={`${num(t.intervals ?? 0)} value(s) logged`}>{r !== undefined ? metricValue(r) : ""}</td>
                  <td class="stop" title={t.stop?.message}>{stop && <span class="tag stopped" data-rule={t.stop?.rule}>{stop}</span>}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
