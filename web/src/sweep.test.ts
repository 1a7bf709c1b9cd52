import { describe, expect, it } from "vitest";
import type { SweepTrial } from "./api";
import { goalText, parameterNames, parameterText, rankTrials, stopText, trialIndex, trialResult } from "./sweep";

const t = (index: number, result?: number | string, parameters = {}): SweepTrial => ({
  ...(index ? { index: String(index) } : {}),
  ...(result !== undefined ? { result } : {}),
  parameters,
});
const order = (ts: SweepTrial[]) => ts.map(trialIndex);

describe("rankTrials", () => {
  const trials = [t(0, -0.04), t(1), t(2, 0), t(3, -0.09), t(4, 0), t(5)];
  it("puts the highest result first for MAXIMIZE, the lower index first among equals", () => {
    expect(order(rankTrials(trials, "MAXIMIZE"))).toEqual([2, 4, 0, 3, 1, 5]);
  });
  it("puts the lowest result first for MINIMIZE; trials without a result last, by index", () => {
    expect(order(rankTrials(trials, "MINIMIZE"))).toEqual([3, 0, 2, 4, 1, 5]);
  });
  it("does not change its argument and takes results written as strings", () => {
    const copy = [...trials];
    rankTrials(trials, "MAXIMIZE");
    expect(trials).toEqual(copy);
    expect(order(rankTrials([t(0, "1.5"), t(1, "2.5")], "MAXIMIZE"))).toEqual([1, 0]);
  });
  it("ranks a non-finite result as no result", () => {
    expect(trialResult(t(0, "NaN"))).toBeUndefined();
    expect(order(rankTrials([t(0, "NaN"), t(1, -1)], "MAXIMIZE"))).toEqual([1, 0]);
    expect(order(rankTrials([t(0, "Infinity"), t(1, -1)], "MAXIMIZE"))).toEqual([1, 0]);
  });
  it("takes an empty list", () => {
    expect(rankTrials([], "MAXIMIZE")).toEqual([]);
  });
});

describe("parameters", () => {
  it("lists every name once, sorted", () => {
    expect(parameterNames([t(0, 1, { lr: { number: 0.1 } }), t(1, 1, { opt: { text: "adam" }, lr: { number: 1 } })]))
      .toEqual(["lr", "opt"]);
  });
  it("writes numbers short, strings as they are", () => {
    expect(parameterText({ number: 0.30000000000000004 })).toBe("0.3");
    expect(parameterText({ number: 1e-5 })).toBe("1e-5");
    expect(parameterText({ number: 0 })).toBe("0");
    expect(parameterText({ text: "adam" })).toBe("adam");
    expect(parameterText({ text: "" })).toBe("");
    expect(parameterText(undefined)).toBe("");
  });
});

describe("stopText and goalText", () => {
  it("names the rule, where it stopped and the comparison", () => {
    expect(stopText({ rule: "bandit", interval: "3", step: "20", value: 0.41, threshold: 0.5 }, "MAXIMIZE"))
      .toBe("bandit at interval 3 (step 20): 0.41 < 0.5");
    expect(stopText({ rule: "median_stopping", interval: "2", value: 3, threshold: 2 }, "MINIMIZE"))
      .toBe("median stopping at interval 2 (step 0): 3 > 2");
    expect(stopText(undefined, "MAXIMIZE")).toBe("");
    expect(stopText({}, "MAXIMIZE")).toBe("");
  });
  it("writes the goal for people", () => {
    expect(goalText("MAXIMIZE")).toBe("maximize");
    expect(goalText("MINIMIZE")).toBe("minimize");
    expect(goalText(undefined)).toBe("");
  });
});
