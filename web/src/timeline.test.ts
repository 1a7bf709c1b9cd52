import { describe, expect, it } from "vitest";
import { extendTimeline } from "./timeline";

describe("extendTimeline", () => {
  it("starts at the submit and adds each change the watch shows once", () => {
    let t = extendTimeline([], { id: "j-1", createTime: "2026-01-01T00:00:00Z", status: { state: "QUEUED", reason: "waiting for 4 cpus" } });
    t = extendTimeline(t, { id: "j-1", createTime: "2026-01-01T00:00:00Z", status: { state: "QUEUED", reason: "waiting for 4 cpus" } });
    t = extendTimeline(t, { id: "j-1", status: { state: "RUNNING", attempt: 1, startTime: "2026-01-01T00:00:05Z", updateTime: "2026-01-01T00:00:05Z" } });
    t = extendTimeline(t, { id: "j-1", status: { state: "CANCELED", cause: "CANCELED_BY_USER", reason: "test", endTime: "2026-01-01T00:01:00Z", updateTime: "2026-01-01T00:01:01Z" } });
    expect(t.map((e) => e.state)).toEqual(["QUEUED", "QUEUED", "RUNNING", "CANCELED"]);
    expect(t[1].reason).toBe("waiting for 4 cpus");
    expect(t[2].time).toBe("2026-01-01T00:00:05Z");
    expect(t[3].time).toBe("2026-01-01T00:01:00Z");
    expect(t[3].cause).toBe("CANCELED_BY_USER");
  });
  it("fills in the start of a run opened after it started", () => {
    const t = extendTimeline([], { id: "j-1", createTime: "2026-01-01T00:00:00Z", status: { state: "COMPLETED", startTime: "2026-01-01T00:00:03Z", endTime: "2026-01-01T00:00:09Z" } });
    expect(t.map((e) => e.state)).toEqual(["QUEUED", "RUNNING", "COMPLETED"]);
  });
});
