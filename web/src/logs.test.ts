import { describe, expect, it } from "vitest";
import { filterLines, lineLabel, LogLines } from "./logs";

describe("LogLines", () => {
  it("joins a line cut across chunks and keeps ranks apart", () => {
    const l = new LogLines();
    l.add({ attempt: "1", rank: 0, offset: "0", text: "step 1 lo" });
    l.add({ attempt: "1", rank: 1, offset: "0", text: "other rank\n" });
    l.add({ attempt: "1", rank: 0, offset: "9", text: "ss 0.5\nstep 2" });
    expect(l.lines).toEqual([
      { rank: 1, stream: "STDOUT", text: "other rank" },
      { rank: 0, stream: "STDOUT", text: "step 1 loss 0.5" },
    ]);
    expect(l.pending()).toEqual([{ rank: 0, stream: "STDOUT", text: "step 2" }]);
  });
  it("shows nothing twice after a reconnect resends what was shown", () => {
    const l = new LogLines();
    expect(l.add({ attempt: "1", offset: "0", text: "a\nb\n" })).toBe(true);
    expect(l.add({ attempt: "1", offset: "0", text: "a\nb\nc\n" })).toBe(true);
    expect(l.add({ attempt: "1", offset: "2", text: "b\n" })).toBe(false);
    expect(l.lines.map((x) => x.text)).toEqual(["a", "b", "c"]);
  });
});

describe("attempt markers", () => {
  it("stay visible under every filter and show as they are", () => {
    const l = new LogLines();
    l.add({ attempt: "1", rank: 1, offset: "0", text: "first try\n" });
    l.mark("--- attempt 2 ---");
    const shown = filterLines(l.lines, { rank: 0, search: "nothing matches" });
    expect(shown.map((x) => lineLabel(x, true))).toEqual(["--- attempt 2 ---"]);
  });
});

describe("filterLines", () => {
  const lines = [
    { rank: 0, stream: "STDOUT", text: "Epoch 1 loss 0.9" },
    { rank: 1, stream: "STDOUT", text: "epoch 1 loss 0.8" },
    { rank: 1, stream: "STDERR", text: "warning: slow" },
  ];
  it("filters by rank, stream and a case-insensitive search", () => {
    expect(filterLines(lines, { search: "EPOCH" })).toHaveLength(2);
    expect(filterLines(lines, { rank: 1 })).toHaveLength(2);
    expect(filterLines(lines, { rank: 1, stream: "STDERR" })).toEqual([lines[2]]);
    expect(filterLines(lines, {})).toHaveLength(3);
  });
  it("labels interleaved ranks and stderr", () => {
    expect(lineLabel(lines[2], true)).toBe("[rank 1 err] warning: slow");
    expect(lineLabel(lines[0], false)).toBe("Epoch 1 loss 0.9");
    expect(lineLabel(lines[2], false)).toBe("[err] warning: slow");
  });
});
