import { useEffect, useState } from "preact/hooks";
import { api, ApiError, jobPath, roleOf, type Job, type OutputFile, type User } from "../api";
import { bytes, count, dateTime, duration, isTerminal, num, reasonText, stateLabel, tsMillis } from "../format";
import { experimentHref, Link } from "../components/Link";
import { StateBadge } from "../components/StateBadge";
import { LogView } from "../components/LogView";
import { MetricsPanel } from "../components/MetricsPanel";
import { ResumableStream } from "../sse";
import { extendTimeline, type TimelineEntry } from "../timeline";
import { useNow } from "../hooks";

/** One run: its state and timeline, metric curves, every rank's log, outputs and spec. */
export function RunPage(props: { id: string; user: User }) {
  const [job, setJob] = useState<Job | undefined>(undefined);
  const [timeline, setTimeline] = useState<TimelineEntry[]>([]);
  const [error, setError] = useState("");
  const [attempt, setAttempt] = useState(0); // 0: the latest
  const now = useNow(1000);

  useEffect(() => {
    setJob(undefined);
    setTimeline([]);
    setError("");
    setAttempt(0);
    const s = new ResumableStream(`/api/v1${jobPath(props.id)}/watch`, {
      handlers: {
        job: (j: Job) => {
          setJob(j);
          setTimeline((t) => extendTimeline(t, j));
        },
      },
    });
    // The stream says nothing about a missing or forbidden run: ask once to explain.
    api<Job>(jobPath(props.id)).then((j) => {
      setJob((cur) => cur ?? j);
      setTimeline((t) => (t.length ? t : extendTimeline(t, j)));
    }).catch((e) => {
      setError(e instanceof ApiError ? `${e.code}: ${e.message}` : String(e));
      s.close();
    });
    return () => s.close();
  }, [props.id]);

  if (error) return <section><h1>{props.id}</h1><p class="error" role="alert">{error}</p></section>;
  if (!job) return <p class="muted">Loading…</p>;

  const st = job.status ?? {};
  const spec = job.spec ?? {};
  const latest = st.attempt ?? 1;
  const shownAttempt = attempt || latest;
  const live = !isTerminal(st.state) && shownAttempt === latest;
  // Followed live, the API's attempt 0 ("the current one") also covers a run still queued.
  const apiAttempt = live ? 0 : shownAttempt;
  const ranks = Math.max(1, (spec.nodeCount ?? 1) * (spec.processCountPerNode ?? 1));
  const start = tsMillis(st.startTime);

  return (
    <section class="run">
      <div class="run-head">
        <h1>{job.id}{spec.name && <span class="muted"> {spec.name}</span>}</h1>
        <StateBadge state={st.state} />
        <span class="spacer" />
        <CancelButton job={job} user={props.user} onJob={setJob} />
      </div>
      <dl class="facts">
        <dt>owner</dt><dd>{job.owner}</dd>
        {spec.experiment && <><dt>experiment</dt><dd><Link href={experimentHref(spec.experiment)}>{spec.experiment}</Link></dd></>}
        <dt>submitted</dt><dd>{dateTime(job.createTime)}</dd>
        {start !== undefined && <><dt>ran</dt><dd>{duration((tsMillis(st.endTime) ?? now) - start)}</dd></>}
        {(st.nodes ?? []).length > 0 && <><dt>nodes</dt><dd>{st.nodes!.join(", ")}</dd></>}
        {reasonText(st.state, st.reason) && <><dt>reason</dt><dd data-testid="reason">{st.reason}</dd></>}
        {st.message && <><dt>message</dt><dd>{st.message}</dd></>}
        {st.cause && st.cause !== "CAUSE_UNSPECIFIED" && <><dt>cause</dt><dd>{st.cause.toLowerCase().replace(/_/g, " ")}</dd></>}
        {Object.keys(spec.tags ?? {}).length > 0 && <><dt>tags</dt><dd>{Object.entries(spec.tags!).map(([k, v]) => <span class="tag">{k}={v}</span>)}</dd></>}
        {latest > 1 && (
          <>
            <dt>attempt</dt>
            <dd>
              <select aria-label="attempt" value={String(shownAttempt)} onChange={(e) => setAttempt(Number((e.target as HTMLSelectElement).value))}>
                {Array.from({ length: latest }, (_, i) => <option value={String(i + 1)}>{i + 1}{i + 1 === latest ? " (latest)" : ""}</option>)}
              </select>
            </dd>
          </>
        )}
      </dl>

      <h2>Timeline</h2>
      <ol class="timeline" data-testid="timeline">
        {timeline.map((e) => (
          <li data-state={e.state}>
            <span class="when">{dateTime(e.time)}</span> <strong>{stateLabel(e.state)}</strong>
            {e.attempt && e.attempt > 1 ? <span class="muted"> attempt {e.attempt}</span> : null}
            {reasonText(e.state, e.reason) && <span> — {e.reason}</span>}
            {e.cause && e.cause !== "CAUSE_UNSPECIFIED" && <span class="muted"> ({e.cause.toLowerCase().replace(/_/g, " ")})</span>}
            {e.message && <div class="muted small">{e.message}</div>}
          </li>
        ))}
      </ol>
      {(st.exits ?? []).length > 0 && (
        <table class="grid compact exits">
          <thead><tr><th>rank</th><th>node</th><th>exit code</th><th>signal</th><th /></tr></thead>
          <tbody>{st.exits!.map((x) => <tr><td>{x.rank ?? 0}</td><td>{x.node}</td><td>{x.exitCode ?? 0}</td><td>{x.signal ?? ""}</td><td>{x.oomKilled ? "out of memory" : ""}</td></tr>)}</tbody>
        </table>
      )}

      <h2>Metrics</h2>
      <MetricsPanel key={`${job.id}/${shownAttempt}`} jobId={job.id} attempt={apiAttempt} live={live} />

      <h2>Logs</h2>
      <LogView key={`${job.id}/${shownAttempt}`} jobId={job.id} attempt={apiAttempt} live={live} ranks={ranks} />

      <h2>Outputs</h2>
      <Outputs job={job} />

      <details class="spec">
        <summary>Spec</summary>
        <SpecTable job={job} />
      </details>
    </section>
  );
}

function CancelButton(props: { job: Job; user: User; onJob: (j: Job) => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const st = props.job.status?.state;
  if (isTerminal(st) || st === "CANCEL_REQUESTED") return null;
  if (roleOf(props.user) === "VIEWER") return null;
  const cancel = async () => {
    if (!confirm(`Cancel ${props.job.id}?`)) return;
    setBusy(true);
    setError("");
    try {
      props.onJob(await api<Job>(`${jobPath(props.job.id)}/cancel`, { method: "POST", body: { reason: `canceled from the web page by ${props.user.name}` } }));
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <span>
      {error && <span class="error">{error} </span>}
      <button class="danger" disabled={busy} onClick={cancel}>Cancel run</button>
    </span>
  );
}

function Outputs(props: { job: Job }) {
  const [files, setFiles] = useState<OutputFile[] | undefined>(undefined);
  const [error, setError] = useState("");
  const st = props.job.status ?? {};
  const ended = isTerminal(st.state);
  useEffect(() => {
    if (!ended) return;
    api<{ files?: OutputFile[] }>(`${jobPath(props.job.id)}/outputs`)
      .then((r) => setFiles(r.files ?? []))
      .catch((e) => (e instanceof ApiError && e.status === 404 ? setFiles([]) : setError((e as Error).message)));
  }, [props.job.id, ended]);
  if (!ended) return <p class="muted">Outputs are uploaded when the run ends.</p>;
  if (st.outputsRemovedTime) return <p class="muted">Outputs were removed on {dateTime(st.outputsRemovedTime)}.</p>;
  if (error) return <p class="error">{error}</p>;
  if (!files) return <p class="muted">Loading…</p>;
  if (files.length === 0) return <p class="muted" data-testid="no-outputs">No outputs.</p>;
  return (
    <table class="grid compact" data-testid="outputs">
      <thead><tr><th>file</th><th>size</th></tr></thead>
      <tbody>
        {files.map((f) => (
          <tr>
            <td><a href={`/api/v1${jobPath(props.job.id)}/outputs/${f.path.split("/").map(encodeURIComponent).join("/")}`} download>{f.path}</a></td>
            <td>{bytes(num(f.size))}</td>
          </tr>
        ))}
      </tbody>
      <tfoot><tr><td>{count(files.length)} file(s)</td><td>{bytes(files.reduce((a, f) => a + num(f.size), 0))}</td></tr></tfoot>
    </table>
  );
}

function SpecTable(props: { job: Job }) {
  const s = props.job.spec ?? {};
  const args = (s.arguments ?? []).map((a) => a.value ?? (a.data ? `ds://${a.data.datastore}/${a.data.path ?? ""}` : "")).join(" ");
  const res = s.resources ?? {};
  const rows: Array<[string, string]> = [
    ["entry script", `${s.entryScript ?? ""} ${args}`.trim()],
    ["compute target", s.computeTarget ?? "default"],
    ["nodes × processes", `${s.nodeCount ?? 1} × ${s.processCountPerNode ?? 1}`],
    ["backend", (s.distributedBackend ?? "NONE").toLowerCase()],
    ["resources", [res.cpus ? `${res.cpus} cpus` : "", res.memoryMib ? `${res.memoryMib} MiB` : "", res.gpus ? `${res.gpus} GPUs` : ""].filter(Boolean).join(", ") || "defaults"],
    ["image", s.environment?.image || "the node's OS"],
    ["pip packages", (s.environment?.pipPackages ?? []).join(" ")],
    ["max run duration", s.maxRunDuration ?? ""],
    ["priority", String(s.priority ?? 0)],
    ["max retries", String(s.maxRetries ?? 0)],
    ["snapshot", s.sourceSnapshot ?? ""],
  ];
  return (
    <>
      <table class="grid compact spec-table"><tbody>{rows.filter(([, v]) => v).map(([k, v]) => <tr><th>{k}</th><td>{v}</td></tr>)}</tbody></table>
      <pre class="json">{JSON.stringify(s, null, 2)}</pre>
    </>
  );
}
