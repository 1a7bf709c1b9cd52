// Formatting of what the API returns (protobuf's JSON mapping: int64 as strings, enums by
// name, timestamps as RFC 3339, default values omitted) for people.

/** A number from protobuf JSON: int64 comes as a string, NaN and infinities as "NaN",
 * "Infinity", "-Infinity"; an omitted field is 0. */
export function num(v: string | number | undefined | null): number {
  if (v === undefined || v === null || v === "") return 0;
  return typeof v === "number" ? v : Number(v);
}

/** Milliseconds since the epoch of an RFC 3339 timestamp, or undefined when absent. */
export function tsMillis(ts: string | undefined): number | undefined {
  if (!ts) return undefined;
  const ms = Date.parse(ts);
  return Number.isNaN(ms) ? undefined : ms;
}

/** "4s", "3m 12s", "2h 5m", "3d 4h": a duration for a table cell. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) ms = 0;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  const d = Math.floor(h / 24);
  return `${d}d ${h % 24}h`;
}

/** How long ago `ts` was, as of `now` (ms): "12s ago"; "" without a timestamp. */
export function age(ts: string | undefined, now: number): string {
  const t = tsMillis(ts);
  return t === undefined ? "" : `${duration(now - t)} ago`;
}

/** A local date and time, to the second: "2026-12-07 09:55:32". */
export function dateTime(ts: string | undefined): string {
  const t = tsMillis(ts);
  if (t === undefined) return "";
  const d = new Date(t);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Bytes in binary units: "512 B", "1.5 KiB", "2.0 GiB". */
export function bytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  let v = Math.abs(n);
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const sign = n < 0 ? "-" : "";
  return i === 0 ? `${sign}${v} B` : `${sign}${v.toFixed(1)} ${units[i]}`;
}

/** Memory given in MiB, as the API's resources give it. */
export function mib(n: number): string {
  return bytes(n * 1024 * 1024);
}

/** A metric value: short but exact enough to compare ("0.05", "1.235e-7", "12,345"). */
export function metricValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "Infinity" : "-Infinity";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-4) return v.toExponential(4).replace(/\.?0+e/, "e");
  if (Number.isInteger(v)) return v.toLocaleString("en-US");
  return String(Number(v.toPrecision(6)));
}

/** An integer with thousands separators: "1,000,000". */
export function count(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELED"]);

/** Whether a job's state is final. */
export function isTerminal(state: string | undefined): boolean {
  return TERMINAL.has(state ?? "");
}

/** A state's name for people: "CANCEL_REQUESTED" -> "cancel requested". */
export function stateLabel(state: string | undefined): string {
  return (state ?? "STATE_UNSPECIFIED").toLowerCase().replace(/_/g, " ");
}

/** A status reason worth showing beside its state: "" when it only repeats the state's name
 * (droverd sets reason "COMPLETED" on a completed job). */
export function reasonText(state: string | undefined, reason: string | undefined): string {
  if (!reason) return "";
  return reason.toUpperCase() === (state ?? "").toUpperCase() ? "" : reason;
}
