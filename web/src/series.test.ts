import { describe, expect, it } from "vitest";
import { align, appendSeries, fromJson, groupByChart, positiveOnly, seriesKey } from "./series";

describe("fromJson", () => {
  it("reads int64 steps as strings, NaN as text and the omitted rank 0", () => {
    const s = fromJson({ name: "loss", steps: ["0", "1", "2"], values: [0.5, "NaN", "Infinity"], times: [1, 2, 3] });
    expect(s.rank).toBe(0);
    expect(s.source).toBe("USER");
    expect(s.steps).toEqual([0, 1, 2]);
    expect(s.values[1]).toBeNaN();
    expect(s.values[2]).toBe(Infinity);
    expect(s.total).toBe(3);
    expect(s.thinned).toBe(false);
  });
  it("keeps the server's total and thinning", () => {
    const s = fromJson({ name: "loss", steps: [0, 9], values: [1, 2], totalPoints: "1000000", thinned: true, method: "minmax", bucketSteps: "2048" });
    expect(s.total).toBe(1_000_000);
    expect(s.thinned).toBe(true);
    expect(s.method).toBe("minmax");
    expect(s.bucketSteps).toBe(2048);
  });
});

describe("appendSeries", () => {
  it("appends live points to their series and makes new ones, leaving the old map alone", () => {
    const a = appendSeries(new Map(), [{ name: "loss", steps: ["0"], values: [1] }]);
    const b = appendSeries(a, [{ name: "loss", steps: ["1"], values: [0.5] }, { name: "loss", rank: 1, steps: ["0"], values: [2] }]);
    expect(a.get("USER|loss|0")!.steps).toEqual([0]);
    expect(b.get("USER|loss|0")!.steps).toEqual([0, 1]);
    expect(b.get("USER|loss|0")!.values).toEqual([1, 0.5]);
    expect(b.get("USER|loss|0")!.total).toBe(2);
    expect(b.get(seriesKey({ name: "loss", rank: 1 }))!.values).toEqual([2]);
  });
});

describe("groupByChart", () => {
  it("makes one chart per source and name with ranks in order", () => {
    const m = appendSeries(new Map(), [
      { name: "loss", rank: 1, steps: [0], values: [1] },
      { name: "acc", steps: [0], values: [1] },
      { name: "loss", steps: [0], values: [1] },
      { name: "memory_bytes", source: "SYSTEM", steps: [0], values: [1] },
    ]);
    const g = groupByChart(m);
    expect(g.map((x) => `${x.source}:${x.name}`)).toEqual(["USER:acc", "USER:loss", "SYSTEM:memory_bytes"]);
    expect(g[1].series.map((s) => s.rank)).toEqual([0, 1]);
  });
});

describe("align", () => {
  it("puts every series on the union of x, with gaps as null and non-finite values as gaps", () => {
    expect(align([[0, 2, 4], [1, 2]], [[1, 2, 3], [NaN, 5]])).toEqual([
      [0, 1, 2, 4],
      [1, null, 2, 3],
      [null, null, 5, null],
    ]);
  });
  it("positiveOnly drops what a log scale cannot show", () => {
    expect(positiveOnly([1, 0, -2, null, 3])).toEqual([1, null, null, null, 3]);
  });
});
