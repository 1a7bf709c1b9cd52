import { describe, expect, it } from "vitest";
import { parseRoute } from "./router";

describe("parseRoute", () => {
  it("maps paths to pages", () => {
    expect(parseRoute("/")).toEqual({ page: "runs" });
    expect(parseRoute("/runs/j-12")).toEqual({ page: "run", id: "j-12" });
    expect(parseRoute("/experiments/mnist%20v2")).toEqual({ page: "experiment", name: "mnist v2" });
    expect(parseRoute("/nodes")).toEqual({ page: "nodes" });
    expect(parseRoute("/sweeps")).toEqual({ page: "sweeps" });
    expect(parseRoute("/sweeps/s-0123456789abcdef")).toEqual({ page: "sweep", id: "s-0123456789abcdef" });
    expect(parseRoute("/sweeps/a%2Fb")).toEqual({ page: "sweep", id: "a/b" });
    expect(parseRoute("/sweeps/s-1/x").page).toBe("notfound");
    expect(parseRoute("/nope/x/y").page).toBe("notfound");
  });
  it("returns after login only to a path of this site", () => {
    expect(parseRoute("/login", "?next=%2Fruns%2Fj-1")).toEqual({ page: "login", next: "/runs/j-1" });
    expect(parseRoute("/login", "?next=https://evil.example/")).toEqual({ page: "login", next: "/" });
    expect(parseRoute("/login", "?next=//evil.example/")).toEqual({ page: "login", next: "/" });
  });
});
