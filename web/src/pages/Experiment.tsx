import { useEffect, useMemo, useState } from "preact/hooks";
import { api, jobPath, query, type Job, type ListJobsResponse, type MetricsResponse } from "../api";
import { age } from "../format";
import { Chart, color } from "../components/Chart";
import { Link, runHref } from "../components/Link";
import { StateBadge } from "../components/StateBadge";
import { fromJson, type Series } from "../series";
import { pointsForWidth, thinningNote } from "../smooth";
import { useInterval, useNow } from "../hooks";

const MAX_RUNS = 20;

/** An experiment: its runs, and one metric's curves of those runs overlaid. */
export function ExperimentPage(props: { name: string }) {
  const [jobs, setJobs] = useState<Job[] | undefined>(undefined);
  const [names, setNames] = useState<string[]>([]);
  const [metric, setMetric] = useState("");
  const [curves, setCurves] = useState<Array<{ job: Job; series: Series[] }>>([]);
  const [selected, setSelected] = useState<Set<string> | null>(null);
  const [allRanks, setAllRanks] = useState(false);
  const [smoothing, setSmoothing] = useState(0);
  const [logScale, setLogScale] = useState(false);
  const [xRange, setXRange] = useState<[number, number] | undefined>(undefined);
  const [error, setError] = useState("");
  const now = useNow(1000);

  const loadJobs = async () => {
    try {
      const r = await api<ListJobsResponse>(`/jobs${query([["experiment", props.name], ["pageSize", MAX_RUNS]])}`);
      setJobs(r.jobs ?? []);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => void loadJobs(), [props.name]);
  useInterval(loadJobs, 5000, [props.name]);

  const runs = (jobs ?? []).filter((j) => selected === null || selected.has(j.id));
  const runIds = runs.map((j) => j.id).join(",");

  // The metric names the runs logged (a few points of each series are enough to know).
  useEffect(() => {
    if (!jobs || jobs.length === 0) return;
    Promise.all(jobs.slice(0, MAX_RUNS).map((j) =>
      api<MetricsResponse>(`${jobPath(j.id)}/metrics${query([["source", "USER"], ["maxPoints", 4]])}`).catch(() => ({} as MetricsResponse))))
      .then((rs) => {
        const set = new Set<string>();
        rs.forEach((r) => (r.series ?? []).forEach((s) => set.add(s.name)));
        const list = [...set].sort();
        setNames(list);
        setMetric((m) => m || (list.includes("loss") ? "loss" : list[0] ?? ""));
      });
  }, [jobs?.map((j) => j.id).join(",")]);

  const loadCurves = async () => {
    if (!metric) return;
    const width = pointsForWidth(document.body.clientWidth);
    const got = await Promise.all(runs.map((j) =>
      api<MetricsResponse>(`${jobPath(j.id)}/metrics${query([["name", metric], ["source", "USER"], ["maxPoints", width]])}`)
        .then((r) => ({ job: j, series: (r.series ?? []).map(fromJson) }))
        .catch(() => ({ job: j, series: [] as Series[] }))));
    setCurves(got);
  };
  useEffect(() => void loadCurves(), [metric, runIds]);
  useInterval(loadCurves, 5000, [metric, runIds]);

  const lines = useMemo(() => curves.flatMap(({ job, series }) =>
    series.filter((s) => allRanks || s.rank === 0).map((s) => ({
      label: allRanks ? `${job.id} rank ${s.rank}` : job.id,
      x: s.steps,
      y: s.values,
    }))), [curves, allRanks]);
  const note = thinningNote(curves.flatMap((c) => c.series).map((s) => ({ shown: s.steps.length, total: s.total, thinned: s.thinned, method: s.method, bucketSteps: s.bucketSteps })));

  return (
    <section>
      <h1>Experiment {props.name}</h1>
      {error && <p class="error">{error}</p>}
      <div class="toolbar">
        <label>metric <select aria-label="metric" value={metric} onChange={(e) => setMetric((e.target as HTMLSelectElement).value)}>
          {names.length === 0 && <option value="">(none logged)</option>}
          {names.map((n) => <option value={n}>{n}</option>)}
        </select></label>
        <label><input type="checkbox" checked={allRanks} onChange={(e) => setAllRanks((e.target as HTMLInputElement).checked)} /> every rank</label>
        <label>smoothing <input type="range" min="0" max="0.99" step="0.01" value={smoothing} onInput={(e) => setSmoothing(Number((e.target as HTMLInputElement).value))} /></label>
        <label><input type="checkbox" checked={logScale} onChange={(e) => setLogScale((e.target as HTMLInputElement).checked)} /> log scale</label>
      </div>
      {metric && lines.length > 0 && (
        <figure class="metric" data-metric={metric}>
          <figcaption>
            <strong>{metric}</strong> <span class="muted small">{lines.length} curve(s); drag to zoom, double-click to zoom out</span>
            {xRange && <button class="link" onClick={() => setXRange(undefined)}>zoom out</button>}
          </figcaption>
          <Chart title={metric} lines={lines} smoothing={smoothing} logScale={logScale} height={360} xRange={xRange} onZoom={(r) => setXRange(r ?? undefined)} />
          {note && <p class="note">{note}</p>}
        </figure>
      )}
      {jobs === undefined ? <p class="muted">Loading…</p> : (
        <table class="grid runs" data-testid="experiment-runs">
          <thead><tr><th>show</th><th>run</th><th>state</th><th>owner</th><th>tags</th><th>age</th></tr></thead>
          <tbody>
            {jobs.map((j) => {
              const idx = runs.findIndex((r) => r.id === j.id);
              return (
                <tr data-job={j.id}>
                  <td>
                    <input type="checkbox" aria-label={`show ${j.id}`} checked={selected === null || selected.has(j.id)} onChange={(e) => {
                      const on = (e.target as HTMLInputElement).checked;
                      const next = new Set(selected ?? jobs.map((x) => x.id));
                      if (on) next.add(j.id); else next.delete(j.id);
                      setSelected(next);
                    }} />
                    {idx >= 0 && !allRanks && <span class="swatch" style={{ background: color(idx) }} />}
                  </td>
                  <td><Link href={runHref(j.id)}>{j.id}</Link>{j.spec?.name && <span class="muted"> {j.spec.name}</span>}</td>
                  <td><StateBadge state={j.status?.state} /></td>
                  <td>{j.owner}</td>
                  <td>{Object.entries(j.spec?.tags ?? {}).map(([k, v]) => <span class="tag">{k}={v}</span>)}</td>
                  <td>{age(j.createTime, now)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
