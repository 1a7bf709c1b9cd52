// One uPlot chart: several lines on one x axis (steps, or times for system series), with
// drag-to-zoom (reported to the parent, which may fetch the range again at full detail),
// double-click to zoom out, a log y scale and smoothing.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import { align, positiveOnly } from "../series";
import { smoothEma } from "../smooth";
import { metricValue } from "../format";

export interface Line {
  label: string;
  x: number[];
  y: number[];
}

export interface ChartProps {
  title: string;
  lines: Line[];
  /** x values are seconds since the epoch (a time axis) rather than steps. */
  timeAxis?: boolean;
  logScale?: boolean;
  /** EMA weight, 0 (none) to 0.99. */
  smoothing?: number;
  /** The x range shown; undefined: everything. */
  xRange?: [number, number];
  /** The user dragged over [min, max], or double-clicked to see everything (null). */
  onZoom?: (range: [number, number] | null) => void;
  height?: number;
  /** How values are written on the axis and in the legend (default: metricValue). */
  format?: (v: number) => string;
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];

export function color(i: number): string {
  return PALETTE[i % PALETTE.length];
}

function buildData(p: ChartProps): uPlot.AlignedData {
  const [x, ...cols] = align(p.lines.map((l) => l.x), p.lines.map((l) => l.y));
  const out: (number | null)[][] = [];
  for (const col of cols) {
    const raw = p.logScale ? positiveOnly(col) : col;
    if (p.smoothing && p.smoothing > 0) {
      out.push(raw); // faint raw line
      const sm = smoothEma(raw, p.smoothing);
      out.push(p.logScale ? positiveOnly(sm) : sm);
    } else {
      out.push(raw);
    }
  }
  return [x, ...out] as uPlot.AlignedData;
}

function buildSeries(p: ChartProps): uPlot.Series[] {
  const s: uPlot.Series[] = [{ label: p.timeAxis ? "time" : "step" }];
  const f = p.format ?? metricValue;
  const fmt = (_u: uPlot, v: number | null) => (v === null || v === undefined ? "–" : f(v));
  p.lines.forEach((l, i) => {
    if (p.smoothing && p.smoothing > 0) {
      s.push({ label: `${l.label} (raw)`, stroke: color(i) + "40", width: 1, spanGaps: true, value: fmt });
      s.push({ label: l.label, stroke: color(i), width: 2, spanGaps: true, value: fmt });
    } else {
      // uPlot draws the points themselves where they are few enough to see (one point has
      // no line to show it otherwise).
      s.push({ label: l.label, stroke: color(i), width: 1.5, spanGaps: true, value: fmt });
    }
  });
  return s;
}

/** One x value (a first point): a range around it rather than uPlot's years of empty time
 * axis. */
function fitSinglePoint(u: uPlot, timeAxis: boolean): void {
  const x = u.data[0];
  if (x.length === 0 || x[0] !== x[x.length - 1]) return;
  const pad = timeAxis ? 30 : 1;
  u.setScale("x", { min: x[0] - pad, max: x[0] + pad });
}

export function Chart(p: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const props = useRef(p);
  props.current = p;
  // What forces a new plot: the lines' labels, the scale kind and smoothing on or off.
  const shape = `${p.lines.map((l) => l.label).join("\u0000")}|${p.logScale}|${(p.smoothing ?? 0) > 0}|${p.timeAxis}`;

  useEffect(() => {
    const el = box.current!;
    const opts: uPlot.Options = {
      width: Math.max(300, el.clientWidth),
      height: p.height ?? 260,
      series: buildSeries(p),
      scales: {
        x: { time: !!p.timeAxis },
        y: p.logScale ? { distr: 3 } : {},
      },
      axes: [{}, { size: 80, values: (_u, vals) => vals.map((v) => (v === null ? "" : (p.format ?? metricValue)(v))) }],
      cursor: {
        drag: { x: true, y: false, setScale: false },
        bind: {
          dblclick: () => () => {
            props.current.onZoom?.(null);
            return null;
          },
        },
      },
      hooks: {
        // After each draw of the canvas: how many points it drew (of every line), so that a
        // test or a benchmark sees the moment the chart shows what it was given.
        draw: [
          () => {
            el.dataset.drawnPoints = String(props.current.lines.reduce((a, l) => a + l.x.length, 0));
            el.dataset.drawnAt = performance.now().toFixed(1);
          },
        ],
        setSelect: [
          (u) => {
            if (u.select.width < 3) return;
            const min = u.posToVal(u.select.left, "x");
            const max = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            props.current.onZoom?.([min, max]);
          },
        ],
      },
      legend: { live: true },
    };
    const u = new uPlot(opts, buildData(p), el);
    plot.current = u;
    fitSinglePoint(u, !!p.timeAxis);
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(300, el.clientWidth), height: props.current.height ?? 260 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [shape]);

  useEffect(() => {
    const u = plot.current;
    if (!u) return;
    u.setData(buildData(p), !p.xRange);
    if (p.xRange) u.setScale("x", { min: p.xRange[0], max: p.xRange[1] });
    else fitSinglePoint(u, !!p.timeAxis);
  }, [p.lines, p.smoothing, p.xRange?.[0], p.xRange?.[1], shape]);

  return <div class="chart" ref={box} aria-label={p.title} />;
}
