// A small path router over the History API: droverd serves index.html for every path that
// is not under /api/, so /runs/j-12 can be opened, reloaded and bookmarked.
import { useEffect, useState } from "preact/hooks";

export type Route =
  | { page: "login"; next: string }
  | { page: "runs" }
  | { page: "run"; id: string }
  | { page: "experiment"; name: string }
  | { page: "nodes" }
  | { page: "sweeps" }
  | { page: "sweep"; id: string }
  | { page: "notfound"; path: string };

/** The route of a path (and query string). */
export function parseRoute(path: string, search = ""): Route {
  const seg = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (seg.length === 0 || (seg.length === 1 && seg[0] === "runs")) return { page: "runs" };
  if (seg[0] === "login" && seg.length === 1) {
    const next = new URLSearchParams(search).get("next") ?? "/";
    return { page: "login", next: next.startsWith("/") && !next.startsWith("//") ? next : "/" };
  }
  if (seg[0] === "runs" && seg.length === 2) return { page: "run", id: seg[1] };
  if (seg[0] === "experiments" && seg.length === 2) return { page: "experiment", name: seg[1] };
  if (seg[0] === "nodes" && seg.length === 1) return { page: "nodes" };
  if (seg[0] === "sweeps" && seg.length === 1) return { page: "sweeps" };
  if (seg[0] === "sweeps" && seg.length === 2) return { page: "sweep", id: seg[1] };
  return { page: "notfound", path };
}

const listeners = new Set<() => void>();

/** Goes to `to` (a path with an optional query) without reloading the page. */
export function navigate(to: string, replace = false): void {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  listeners.forEach((l) => l());
}

if (typeof window !== "undefined") window.addEventListener("popstate", () => listeners.forEach((l) => l()));

/** The current location, re-rendering on navigation. */
export function useLocation(): { path: string; search: string } {
  const [loc, setLoc] = useState({ path: location.pathname, search: location.search });
  useEffect(() => {
    const l = () => setLoc({ path: location.pathname, search: location.search });
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  return loc;
}
