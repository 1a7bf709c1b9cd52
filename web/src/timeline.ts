// A run's state timeline: droverd keeps only a job's current status, so the page builds
// the timeline from what it knows (the submit time, start and end times) and every change
// the watch stream showed while the page was open.
import type { Job } from "./api";
import { tsMillis } from "./format";

export interface TimelineEntry {
  state: string;
  time?: string;
  reason?: string;
  cause?: string;
  message?: string;
  attempt?: number;
}

/** Adds what `job` says to `timeline`: a new entry when the state, reason or attempt
 * changed since the last entry. The first entry is the submit (queued at createTime). */
export function extendTimeline(timeline: ReadonlyArray<TimelineEntry>, job: Job): TimelineEntry[] {
  const out = timeline.slice();
  const st = job.status ?? {};
  if (out.length === 0) {
    out.push({ state: "QUEUED", time: job.createTime, reason: "submitted" });
    if (st.startTime && st.state !== "QUEUED") {
      out.push({ state: "RUNNING", time: st.startTime, reason: "started", attempt: st.attempt });
    }
  }
  const last = out[out.length - 1];
  const state = st.state ?? "STATE_UNSPECIFIED";
  if (last.state !== state || (st.reason && last.reason !== st.reason) || (st.attempt && last.attempt && st.attempt !== last.attempt)) {
    const time = state === "RUNNING" && st.startTime && (tsMillis(st.startTime) ?? 0) > (tsMillis(last.time) ?? 0)
      ? st.startTime
      : st.endTime && ["COMPLETED", "FAILED", "CANCELED"].includes(state) ? st.endTime : st.updateTime;
    out.push({ state, time, reason: st.reason, cause: st.cause, message: st.message, attempt: st.attempt });
  }
  return out;
}
