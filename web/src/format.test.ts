import { describe, expect, it } from "vitest";
import { age, bytes, count, duration, isTerminal, metricValue, num, reasonText, stateLabel } from "./format";

describe("num", () => {
  it("reads protobuf JSON numbers: int64 strings, NaN and infinities, omitted fields", () => {
    expect(num("1000000")).toBe(1000000);
    expect(num(3)).toBe(3);
    expect(num(undefined)).toBe(0);
    expect(num("NaN")).toBeNaN();
    expect(num("Infinity")).toBe(Infinity);
    expect(num("-Infinity")).toBe(-Infinity);
  });
});

describe("duration and age", () => {
  it("shows the two largest units", () => {
    expect(duration(4_000)).toBe("4s");
    expect(duration(192_000)).toBe("3m 12s");
    expect(duration((2 * 3600 + 5 * 60) * 1000)).toBe("2h 5m");
    expect(duration((3 * 24 + 4) * 3600 * 1000)).toBe("3d 4h");
    expect(duration(-5)).toBe("0s");
  });
  it("says how long ago a timestamp was, and nothing without one", () => {
    const now = Date.parse("2026-12-07T10:00:00Z");
    expect(age("2026-12-07T09:59:48Z", now)).toBe("12s ago");
    expect(age("2026-12-07T09:59:48.250Z", now)).toBe("11s ago");
    expect(age(undefined, now)).toBe("");
    expect(age("not a time", now)).toBe("");
  });
});

describe("bytes", () => {
  it("uses binary units with one decimal", () => {
    expect(bytes(512)).toBe("512 B");
    expect(bytes(1536)).toBe("1.5 KiB");
    expect(bytes(2 * 1024 ** 3)).toBe("2.0 GiB");
    expect(bytes(0)).toBe("0 B");
  });
});

describe("metricValue", () => {
  it("keeps small, large and special values readable", () => {
    expect(metricValue(0.05)).toBe("0.05");
    expect(metricValue(1 / 3)).toBe("0.333333");
    expect(metricValue(12345)).toBe("12,345");
    expect(metricValue(1.2345e-7)).toBe("1.2345e-7");
    expect(metricValue(2.5e9)).toBe("2.5e+9");
    expect(metricValue(NaN)).toBe("NaN");
    expect(metricValue(-Infinity)).toBe("-Infinity");
    expect(metricValue(0)).toBe("0");
  });
  it("count separates thousands", () => {
    expect(count(1000000)).toBe("1,000,000");
  });
});

describe("states", () => {
  it("knows the final states and names states for people", () => {
    expect(isTerminal("COMPLETED")).toBe(true);
    expect(isTerminal("CANCELED")).toBe(true);
    expect(isTerminal("CANCEL_REQUESTED")).toBe(false);
    expect(isTerminal(undefined)).toBe(false);
    expect(stateLabel("CANCEL_REQUESTED")).toBe("cancel requested");
    expect(stateLabel(undefined)).toBe("state unspecified");
  });
});

describe("reasonText", () => {
  it("leaves out a reason that only repeats the state", () => {
    expect(reasonText("COMPLETED", "COMPLETED")).toBe("");
    expect(reasonText("STARTING", "STARTING")).toBe("");
    expect(reasonText("QUEUED", "waiting for 4 cpus")).toBe("waiting for 4 cpus");
    expect(reasonText("RUNNING", undefined)).toBe("");
  });
});
