// A run's metric curves: one chart per metric name with a line per rank (the scripts'
// series), and the system series (CPU, memory, GPU) per node. Followed live while the run
// goes on; a zoomed range is fetched again with as many points as the plot has pixels.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, jobPath, query, type MetricsResponse } from "../api";
import { appendSeries, fromJson, groupByChart, seriesKey, type Series } from "../series";
import { pointsForWidth, thinningNote } from "../smooth";
import { bytes, count, metricValue } from "../format";
import { ResumableStream, type StreamState } from "../sse";
import { Chart } from "./Chart";

export function MetricsPanel(props: { jobId: string; attempt: number; live: boolean; system?: boolean }) {
  const { jobId, attempt, live } = props;
  const [data, setData] = useState<Map<string, Series>>(new Map());
  const [state, setState] = useState<StreamState | "loaded" | "loading">("loading");
  const [error, setError] = useState("");
  const [smoothing, setSmoothing] = useState(0);
  const [logScale, setLogScale] = useState(false);
  const [info, setInfo] = useState({ dropped: 0, capped: 0 });

  // A run followed live keeps its stream to the end (the stream ends itself once every
  // point was sent); it is not fetched again when the run ends.
  const followed = useRef(live);
  useEffect(() => {
    setData(new Map());
    setError("");
    const width = pointsForWidth(document.body.clientWidth);
    if (!followed.current) {
      setState("loading");
      api<MetricsResponse>(`${jobPath(jobId)}/metrics${query([["attempt", attempt], ["maxPoints", width]])}`)
        .then((r) => {
          setData(new Map((r.series ?? []).map((j) => { const s = fromJson(j); return [seriesKey(s), s]; })));
          setInfo({ dropped: Number(r.droppedRecords ?? 0), capped: r.cappedStreams ?? 0 });
          setState("loaded");
        })
        .catch((e) => setError((e as Error).message));
      return;
    }
    const stream = new ResumableStream(`/api/v1${jobPath(jobId)}/metrics/watch${query([["attempt", attempt]])}`, {
      handlers: {
        metrics: (m: MetricsResponse) => setData((d) => appendSeries(d, m.series ?? [])),
      },
      onState: setState,
      onServerError: setError,
    });
    return () => stream.close();
  }, [jobId, attempt]);

  const groups = useMemo(() => groupByChart(data), [data]);
  const user = groups.filter((g) => g.source !== "SYSTEM");
  const system = groups.filter((g) => g.source === "SYSTEM");

  return (
    <div class="metrics">
      <div class="toolbar">
        <label title="exponential moving average, as TensorBoard's">
          smoothing <input type="range" min="0" max="0.99" step="0.01" value={smoothing} onInput={(e) => setSmoothing(Number((e.target as HTMLInputElement).value))} />
          <span class="num">{smoothing.toFixed(2)}</span>
        </label>
        <label><input type="checkbox" checked={logScale} onChange={(e) => setLogScale((e.target as HTMLInputElement).checked)} /> log scale</label>
        <span class="muted small">drag over a chart to zoom, double-click to zoom out; click a legend entry to hide a rank</span>
        <span class="spacer" />
        <span class={`stream-state ${state}`} data-testid="metrics-state">{state === "live" ? "live" : state}</span>
      </div>
      {error && <p class="error">{error}</p>}
      {(info.dropped > 0 || info.capped > 0) && (
        <p class="warn">{info.capped} metric stream(s) reached droverd's cap; {count(info.dropped)} record(s) were not stored.</p>
      )}
      {user.length === 0 && state !== "loading" && <p class="muted" data-testid="no-metrics">No metrics logged{state === "ended" || state === "loaded" ? "" : " yet"}.</p>}
      {user.map((g) => (
        <MetricChart key={`${g.source}|${g.name}`} jobId={jobId} attempt={attempt} name={g.name} source={g.source} series={g.series} smoothing={smoothing} logScale={logScale} />
      ))}
      {props.system !== false && system.length > 0 && (
        <>
          <h3>System</h3>
          <div class="system-grid">
            {system.map((g) => (
              <MetricChart key={`${g.source}|${g.name}`} jobId={jobId} attempt={attempt} name={g.name} source={g.source} series={g.series} smoothing={0} logScale={false} timeAxis />
            ))}
          </div>
        </>
      )}
    </div>
  );
}

/** One metric's chart, its thinning note, its zoom (re-fetched) and its table of points. */
function MetricChart(p: { jobId: string; attempt: number; name: string; source: string; series: Series[]; smoothing: number; logScale: boolean; timeAxis?: boolean }) {
  const [zoom, setZoom] = useState<{ range: [number, number]; series?: Series[] } | null>(null);
  const [showTable, setShowTable] = useState(false);

  const onZoom = (range: [number, number] | null) => {
    if (!range) return setZoom(null);
    setZoom({ range });
    if (p.timeAxis) return; // system series are small: zoom on what is there
    // Steps are whole and never negative; a drag between two steps has none to fetch.
    const from = Math.max(0, Math.ceil(range[0]));
    const to = Math.floor(range[1]);
    if (from > to) return;
    api<MetricsResponse>(`${jobPath(p.jobId)}/metrics${query([
      ["attempt", p.attempt], ["name", p.name], ["source", p.source],
      ["fromStep", from], ["toStep", to], ["maxPoints", pointsForWidth(document.body.clientWidth)],
    ])}`)
      .then((r) => setZoom((z) => (z && z.range === range ? { range, series: (r.series ?? []).map(fromJson) } : z)))
      .catch(() => {});
  };

  const shown = zoom?.series ?? p.series;
  const isSystem = p.source === "SYSTEM";
  const lines = useMemo(() => shown.map((s) => ({
    label: isSystem ? `node ${s.rank}` : `rank ${s.rank}`,
    x: p.timeAxis ? s.times : s.steps,
    y: s.values,
  })), [shown, p.timeAxis]);
  const note = thinningNote(shown.map((s) => ({ shown: s.steps.length, total: s.total, thinned: s.thinned, method: s.method, bucketSteps: s.bucketSteps })));
  const points = shown.reduce((a, s) => a + s.steps.length, 0);
  const asBytes = /bytes/.test(p.name);

  return (
    <figure class="metric" data-metric={p.name} data-source={p.source}>
      <figcaption>
        <strong>{p.name}</strong>
        <span class="muted small"> {count(points)} point{points === 1 ? "" : "s"}{shown.length > 1 ? `, ${shown.length} ${isSystem ? "nodes" : "ranks"}` : ""}</span>
        {zoom && <button class="link" onClick={() => setZoom(null)}>zoom out</button>}
        <button class="link" onClick={() => setShowTable(!showTable)} aria-expanded={showTable}>{showTable ? "hide points" : "points"}</button>
      </figcaption>
      <Chart title={p.name} lines={lines} smoothing={p.smoothing} logScale={p.logScale} timeAxis={p.timeAxis} xRange={zoom?.range} onZoom={onZoom} height={isSystem ? 180 : 260} format={asBytes ? bytes : undefined} />
      {note && <p class="note" data-testid="thinned-note">{note}</p>}
      {showTable && <PointsTable series={shown} asBytes={asBytes} />}
    </figure>
  );
}

const TABLE_ROWS = 5000;

/** The points as shown (before smoothing), rank by rank, in the order they were logged. */
function PointsTable(p: { series: Series[]; asBytes: boolean }) {
  const rows: Array<[number, number, number]> = [];
  for (const s of p.series) {
    for (let i = 0; i < s.steps.length && rows.length < TABLE_ROWS; i++) rows.push([s.rank, s.steps[i], s.values[i]]);
  }
  const total = p.series.reduce((a, s) => a + s.steps.length, 0);
  return (
    <div class="points">
      <table class="grid compact" data-testid="points-table">
        <thead><tr><th>rank</th><th>step</th><th>value</th></tr></thead>
        <tbody>
          {rows.map(([r, s, v]) => <tr><td>{r}</td><td>{s}</td><td title={String(v)}>{p.asBytes ? bytes(v) : metricValue(v)}</td></tr>)}
        </tbody>
      </table>
      {total > rows.length && <p class="muted small">first {count(rows.length)} of {count(total)} points</p>}
    </div>
  );
}
