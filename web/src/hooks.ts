import { useEffect, useRef, useState } from "preact/hooks";

/** Calls `fn` every `ms` while mounted (restarting when `deps` change); skips a tick while
 * the previous call is still running, and while the tab is hidden. */
export function useInterval(fn: () => Promise<void> | void, ms: number, deps: unknown[] = []): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    let busy = false;
    const t = setInterval(async () => {
      if (busy || document.hidden) return;
      busy = true;
      try {
        await ref.current();
      } finally {
        busy = false;
      }
    }, ms);
    return () => clearInterval(t);
  }, [ms, ...deps]);
}

/** The time, updated every `ms`: for ages and durations that tick. */
export function useNow(ms: number): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}
