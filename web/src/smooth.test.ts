import { describe, expect, it } from "vitest";
import { pointsForWidth, smoothEma, thinningNote } from "./smooth";

describe("smoothEma", () => {
  it("returns the values unchanged at weight 0", () => {
    expect(smoothEma([1, 5, 2], 0)).toEqual([1, 5, 2]);
  });
  it("is debiased: the first value is kept, a constant series stays constant", () => {
    const s = smoothEma([4, 4, 4, 4], 0.9);
    s.forEach((v) => expect(v).toBeCloseTo(4, 12));
    expect(smoothEma([10, 0], 0.5)[0]).toBeCloseTo(10, 12);
  });
  it("follows a step slowly at a high weight", () => {
    const s = smoothEma([0, 0, 0, 1, 1, 1], 0.9) as number[];
    expect(s[3]).toBeGreaterThan(0);
    expect(s[3]).toBeLessThan(0.5);
    expect(s[5]).toBeGreaterThan(s[4]);
  });
  it("keeps gaps and non-finite values out of the average", () => {
    const s = smoothEma([2, null, NaN, 2], 0.5);
    expect(s[1]).toBeNull();
    expect(s[2]).toBeNaN();
    expect(s[3]).toBeCloseTo(2, 12);
  });
});

describe("thinningNote", () => {
  it("says nothing when every point is shown", () => {
    expect(thinningNote([{ shown: 20, total: 20, thinned: false }])).toBe("");
    expect(thinningNote([])).toBe("");
  });
  it("says how many points of how many, and how they were picked", () => {
    expect(thinningNote([{ shown: 2000, total: 1_000_000, thinned: true, method: "minmax" }]))
      .toBe("2,000 of 1,000,000 points shown (min/max per bucket); zoom in for every point");
  });
  it("names the bucket width when the chart's series share one", () => {
    expect(thinningNote([
      { shown: 1960, total: 1_000_000, thinned: true, method: "minmax", bucketSteps: 2048 },
      { shown: 1950, total: 999_000, thinned: true, method: "minmax", bucketSteps: 2048 },
    ])).toBe("3,910 of 1,999,000 points shown (min/max per bucket of 2,048 steps); zoom in for every point");
  });
  it("adds up the ranks of one chart and names each method once", () => {
    expect(thinningNote([
      { shown: 1000, total: 500_000, thinned: true, method: "minmax" },
      { shown: 300, total: 300, thinned: false },
      { shown: 1000, total: 400_000, thinned: true, method: "lttb" },
    ])).toBe("2,300 of 900,300 points shown (min/max per bucket, largest-triangle buckets); zoom in for every point");
  });
});

describe("pointsForWidth", () => {
  it("asks two points per pixel within the server's limits", () => {
    expect(pointsForWidth(800)).toBe(1600);
    expect(pointsForWidth(10)).toBe(200);
    expect(pointsForWidth(50_000)).toBe(20000);
  });
});
