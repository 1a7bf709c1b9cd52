// Every rank's output of one attempt, followed live (resuming after a reconnect without
// repeating or losing bytes), with a rank and stream filter, search and follow.
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { jobPath, query } from "../api";
import { filterLines, lineLabel, LogLines } from "../logs";
import { ResumableStream, type LogChunk, type StreamState } from "../sse";
import { count } from "../format";

const SHOWN_LINES = 20000;

export function LogView(props: { jobId: string; attempt: number; live: boolean; ranks: number }) {
  const buf = useRef(new LogLines());
  const [version, setVersion] = useState(0);
  const [state, setState] = useState<StreamState>("connecting");
  const [rank, setRank] = useState<number | undefined>(undefined);
  const [stream, setStream] = useState<string | undefined>(undefined);
  const [search, setSearch] = useState("");
  const [follow, setFollow] = useState(true);
  const [serverError, setServerError] = useState("");
  const pre = useRef<HTMLPreElement>(null);

  // Followed live: the stream goes on to the run's end by itself (not reopened then).
  const followed = useRef(props.live);
  useEffect(() => {
    buf.current = new LogLines();
    setVersion((v) => v + 1);
    let scheduled = false;
    const bump = () => {
      // One render per animation frame however many chunks arrive.
      if (scheduled) return;
      scheduled = true;
      requestAnimationFrame(() => {
        scheduled = false;
        setVersion((v) => v + 1);
      });
    };
    const s = new ResumableStream(`/api/v1${jobPath(props.jobId)}/logs${query([["attempt", props.attempt], ["follow", followed.current ? 1 : 0]])}`, {
      handlers: {
        log: (c: LogChunk) => {
          if (buf.current.add(c)) bump();
        },
        // With attempt 0 the server follows a retried job into its next attempt.
        attempt: (a: { attempt?: string }) => {
          buf.current.mark(`--- attempt ${a.attempt ?? "?"} ---`);
          bump();
        },
        end: () => bump(),
      },
      onState: setState,
      onServerError: (m) => setServerError(m),
    });
    return () => s.close();
  }, [props.jobId, props.attempt]);

  const all = buf.current.lines.concat(buf.current.pending());
  const matched = filterLines(all, { rank, stream, search });
  const shown = matched.length > SHOWN_LINES ? matched.slice(matched.length - SHOWN_LINES) : matched;
  const many = props.ranks > 1 && rank === undefined;
  const text = shown.map((l) => lineLabel(l, many)).join("\n");

  useLayoutEffect(() => {
    if (follow && pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [version, follow, text.length]);

  return (
    <div class="logs">
      <div class="toolbar">
        <select aria-label="rank" value={rank === undefined ? "" : String(rank)} onChange={(e) => { const v = (e.target as HTMLSelectElement).value; setRank(v === "" ? undefined : Number(v)); }}>
          <option value="">all ranks</option>
          {Array.from({ length: Math.max(1, props.ranks) }, (_, r) => <option value={String(r)}>rank {r}</option>)}
        </select>
        <select aria-label="stream" value={stream ?? ""} onChange={(e) => { const v = (e.target as HTMLSelectElement).value; setStream(v || undefined); }}>
          <option value="">stdout and stderr</option>
          <option value="STDOUT">stdout</option>
          <option value="STDERR">stderr</option>
        </select>
        <input type="search" placeholder="search" aria-label="search logs" value={search} onInput={(e) => setSearch((e.target as HTMLInputElement).value)} />
        <label><input type="checkbox" checked={follow} onChange={(e) => setFollow((e.target as HTMLInputElement).checked)} /> follow</label>
        <span class="spacer" />
        <span class="muted small">{search ? `${count(matched.length)} of ${count(all.length)} lines` : `${count(all.length)} lines`}</span>
        <span class={`stream-state ${state}`} data-testid="logs-state">{state}</span>
      </div>
      {serverError && <p class="error">{serverError}</p>}
      {buf.current.gaps > 0 && <p class="warn">{count(buf.current.gaps)} bytes of output were no longer kept by droverd.</p>}
      <pre class="logtext" ref={pre} data-testid="log-text" onScroll={(e) => {
        const el = e.currentTarget;
        const atEnd = el.scrollHeight - el.scrollTop - el.clientHeight < 8;
        if (!atEnd && follow) setFollow(false);
      }}>{text}</pre>
      {matched.length > SHOWN_LINES && <p class="muted small">showing the last {count(SHOWN_LINES)} matching lines</p>}
    </div>
  );
}
