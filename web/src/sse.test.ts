import { describe, expect, it } from "vitest";
import { backoffMs, LogOffsets, ResumableStream, withResume, type EventSourceLike } from "./sse";

describe("LogOffsets", () => {
  it("takes new chunks whole and drops a chunk seen before (a reconnect's repeat)", () => {
    const o = new LogOffsets();
    expect(o.accept({ attempt: "1", rank: 0, stream: "STDOUT", offset: "0", text: "hello\n" })).toBe("hello\n");
    expect(o.accept({ attempt: "1", rank: 0, stream: "STDOUT", offset: "6", text: "world\n" })).toBe("world\n");
    expect(o.accept({ attempt: "1", rank: 0, stream: "STDOUT", offset: "0", text: "hello\n" })).toBe("");
    expect(o.offset("1:0:STDOUT")).toBe(12);
  });
  it("keeps only the unseen tail of an overlapping chunk, counting bytes, not characters", () => {
    const o = new LogOffsets();
    o.accept({ attempt: 1, rank: 0, stream: "STDOUT", offset: 0, text: "é" }); // 2 bytes
    expect(o.accept({ attempt: 1, rank: 0, stream: "STDOUT", offset: 0, text: "éab" })).toBe("ab");
    expect(o.offset("1:0:STDOUT")).toBe(4);
  });
  it("keeps each rank, stream and attempt apart (defaults omitted by protobuf JSON are 0)", () => {
    const o = new LogOffsets();
    expect(o.accept({ attempt: "1", offset: "0", text: "a" })).toBe("a");
    expect(o.accept({ attempt: "1", rank: 1, offset: "0", text: "b" })).toBe("b");
    expect(o.accept({ attempt: "1", stream: "STDERR", offset: "0", text: "c" })).toBe("c");
    expect(o.accept({ attempt: "2", offset: "0", text: "d" })).toBe("d");
    expect(o.accept({ attempt: "1", rank: 0, stream: "STDOUT", offset: "0", text: "a" })).toBe("");
  });
  it("takes a chunk past the end and counts the missing bytes", () => {
    const o = new LogOffsets();
    o.accept({ attempt: 1, offset: 0, text: "abc" });
    expect(o.accept({ attempt: 1, offset: 10, text: "xyz" })).toBe("xyz");
    expect(o.gaps).toBe(7);
  });
});

describe("event ids and resume", () => {
  it("adds resume=<id> to a URL, replacing an earlier one", () => {
    expect(withResume("/api/v1/jobs/j-1/logs?follow=1", "1:0:STDOUT:12")).toBe("/api/v1/jobs/j-1/logs?follow=1&resume=1%3A0%3ASTDOUT%3A12");
    expect(withResume("/a?resume=x", "y")).toBe("/a?resume=y");
    expect(withResume("/a?b=1", "")).toBe("/a?b=1");
  });
  it("backs off from half a second to ten", () => {
    expect([0, 1, 2, 3, 4, 5, 10].map(backoffMs)).toEqual([500, 1000, 2000, 4000, 8000, 10000, 10000]);
  });
});

/** An EventSource double the test drives. */
class FakeSource implements EventSourceLike {
  readyState = 0;
  onopen: ((ev: Event) => unknown) | null = null;
  onerror: ((ev: Event) => unknown) | null = null;
  closed = false;
  listeners = new Map<string, (ev: MessageEvent) => void>();
  constructor(readonly url: string) {}
  addEventListener(type: string, l: (ev: MessageEvent) => void) {
    this.listeners.set(type, l);
  }
  close() {
    this.closed = true;
    this.readyState = 2;
  }
  emit(type: string, data: unknown, id = "") {
    this.listeners.get(type)?.({ data: JSON.stringify(data), lastEventId: id } as MessageEvent);
  }
  fail(permanently: boolean) {
    this.readyState = permanently ? 2 : 0;
    this.onerror?.(new Event("error"));
  }
}

function harness() {
  const opened: FakeSource[] = [];
  const timers: Array<{ fn: () => void; ms: number }> = [];
  const seen: Array<[string, unknown]> = [];
  const states: string[] = [];
  const stream = new ResumableStream("/api/v1/jobs/j-1/logs?follow=1", {
    handlers: { log: (d) => seen.push(["log", d]) },
    onState: (s) => states.push(s),
    open: (u) => {
      const s = new FakeSource(u);
      opened.push(s);
      return s;
    },
    schedule: (fn, ms) => timers.push({ fn, ms }),
  });
  return { stream, opened, timers, seen, states };
}

describe("ResumableStream", () => {
  it("reopens with resume=<last id> after the browser gave up, with a delay", () => {
    const h = harness();
    h.opened[0].onopen?.(new Event("open"));
    h.opened[0].emit("log", { text: "a" }, "1:0:STDOUT:1");
    h.opened[0].fail(true);
    expect(h.opened[0].closed).toBe(true);
    expect(h.timers).toHaveLength(1);
    expect(h.timers[0].ms).toBe(500);
    h.timers[0].fn();
    expect(h.opened).toHaveLength(2);
    expect(h.opened[1].url).toBe("/api/v1/jobs/j-1/logs?follow=1&resume=1%3A0%3ASTDOUT%3A1");
    expect(h.states).toEqual(["connecting", "live", "reconnecting", "reconnecting"]);
  });
  it("lets the browser's own retry (Last-Event-ID) run without opening a second source", () => {
    const h = harness();
    h.opened[0].fail(false);
    expect(h.timers).toHaveLength(0);
    expect(h.opened).toHaveLength(1);
  });
  it("stops for good at event end and ignores a late error", () => {
    const h = harness();
    h.opened[0].emit("log", { text: "a" }, "1:0:STDOUT:1");
    h.opened[0].emit("end", { job: { id: "j-1" } });
    expect(h.opened[0].closed).toBe(true);
    expect(h.states[h.states.length - 1]).toBe("ended");
    h.opened[0].fail(true);
    expect(h.timers).toHaveLength(0);
    expect(h.seen).toEqual([["log", { text: "a" }]]);
  });
  it("ends at the server's event error, reports it and does not reconnect", () => {
    const errors: string[] = [];
    const opened: FakeSource[] = [];
    const timers: unknown[] = [];
    new ResumableStream("/x", {
      handlers: {},
      onServerError: (m) => errors.push(m),
      open: (u) => { const s = new FakeSource(u); opened.push(s); return s; },
      schedule: (fn) => timers.push(fn),
    });
    opened[0].listeners.get("error")?.({ data: undefined, lastEventId: "" } as unknown as MessageEvent);
    expect(errors).toEqual([]);
    opened[0].emit("error", { error: { code: "UNAVAILABLE", message: "droverd is stopping" } });
    expect(errors).toEqual(["UNAVAILABLE: droverd is stopping"]);
    expect(opened[0].closed).toBe(true);
    opened[0].fail(true);
    expect(timers).toHaveLength(0);
  });
  it("delivers nothing after close()", () => {
    const h = harness();
    h.stream.close();
    h.opened[0].emit("log", { text: "late" });
    expect(h.seen).toEqual([]);
  });
  it("grows the delay while reconnects keep failing and resets it once open", () => {
    const h = harness();
    for (let i = 0; i < 3; i++) {
      h.opened[i].fail(true);
      h.timers[i].fn();
    }
    expect(h.timers.map((t) => t.ms)).toEqual([500, 1000, 2000]);
    h.opened[3].onopen?.(new Event("open"));
    h.opened[3].fail(true);
    expect(h.timers[3].ms).toBe(500);
  });
});
