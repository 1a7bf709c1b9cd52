import { useEffect, useState } from "preact/hooks";
import { api, query, type Job, type ListJobsResponse } from "../api";
import { age, duration, reasonText, tsMillis } from "../format";
import { experimentHref, Link, runHref } from "../components/Link";
import { StateBadge } from "../components/StateBadge";
import { navigate, useLocation } from "../router";
import { useInterval, useNow } from "../hooks";

const STATES = ["QUEUED", "PREPARING", "STARTING", "RUNNING", "FINALIZING", "CANCEL_REQUESTED", "COMPLETED", "FAILED", "CANCELED"];
const REFRESH_MS = 2000;

/** The filters, kept in the address so a filtered list can be shared. */
function filtersFrom(search: string) {
  const q = new URLSearchParams(search);
  return { states: q.getAll("state"), experiment: q.get("experiment") ?? "", tag: q.get("tag") ?? "", owner: q.get("owner") ?? "" };
}

/** Every run the caller may see, newest first, refreshed every 2 s; filter by state,
 * experiment, tag and owner. */
export function RunsPage() {
  const loc = useLocation();
  const f = filtersFrom(loc.search);
  const [jobs, setJobs] = useState<Job[] | undefined>(undefined);
  const [next, setNext] = useState("");
  const [pages, setPages] = useState(1);
  const [error, setError] = useState("");
  const now = useNow(1000);
  const [experimentInput, setExperimentInput] = useState(f.experiment);
  const [tagInput, setTagInput] = useState(f.tag);
  const [ownerInput, setOwnerInput] = useState(f.owner);

  const load = async () => {
    try {
      let all: Job[] = [];
      let token = "";
      for (let p = 0; p < pages; p++) {
        const r = await api<ListJobsResponse>(`/jobs${query([
          ...f.states.map((s): [string, string] => ["state", s]),
          ["experiment", f.experiment], ["tag", f.tag], ["owner", f.owner],
          ["pageSize", 50], ["pageToken", token],
        ])}`);
        all = all.concat(r.jobs ?? []);
        token = r.nextPageToken ?? "";
        if (!token) break;
      }
      setJobs(all);
      setNext(token);
      setError("");
    } catch (e) {
      setError((e as Error).message);
    }
  };

  useEffect(() => void load(), [loc.search, pages]);
  useInterval(load, REFRESH_MS, [loc.search, pages]);

  const setFilters = (nf: { states?: string[]; experiment?: string; tag?: string; owner?: string }) => {
    const m = { ...f, ...nf };
    setPages(1);
    navigate(`/${query([...m.states.map((s): [string, string] => ["state", s]), ["experiment", m.experiment], ["tag", m.tag], ["owner", m.owner]])}`, true);
  };
  const toggleState = (s: string) =>
    setFilters({ states: f.states.includes(s) ? f.states.filter((x) => x !== s) : [...f.states, s] });

  return (
    <section>
      <h1>Runs</h1>
      <form class="filters" onSubmit={(e) => { e.preventDefault(); setFilters({ experiment: experimentInput.trim(), tag: tagInput.trim(), owner: ownerInput.trim() }); }}>
        <div class="chips" role="group" aria-label="state">
          {STATES.map((s) => (
            <button type="button" class={`chip ${f.states.includes(s) ? "on" : ""}`} aria-pressed={f.states.includes(s)} onClick={() => toggleState(s)}>
              {s.toLowerCase().replace(/_/g, " ")}
            </button>
          ))}
        </div>
        <input name="experiment" placeholder="experiment" value={experimentInput} onInput={(e) => setExperimentInput((e.target as HTMLInputElement).value)} />
        <input name="tag" placeholder="tag key=value" value={tagInput} onInput={(e) => setTagInput((e.target as HTMLInputElement).value)} />
        <input name="owner" placeholder="owner" value={ownerInput} onInput={(e) => setOwnerInput((e.target as HTMLInputElement).value)} />
        <button type="submit">Filter</button>
        {(f.states.length > 0 || f.experiment || f.tag || f.owner) && (
          <button type="button" class="link" onClick={() => { setExperimentInput(""); setTagInput(""); setOwnerInput(""); setFilters({ states: [], experiment: "", tag: "", owner: "" }); }}>clear</button>
        )}
      </form>
      {error && <p class="error" role="alert">{error}</p>}
      {jobs === undefined ? <p class="muted">Loading…</p> : jobs.length === 0 ? <p class="muted" data-testid="no-runs">No runs.</p> : (
        <table class="grid runs" data-testid="runs-table">
          <thead>
            <tr><th>run</th><th>state</th><th>reason</th><th>owner</th><th>experiment</th><th>nodes</th><th>age</th><th>duration</th></tr>
          </thead>
          <tbody>
            {jobs.map((j) => {
              const st = j.status ?? {};
              const start = tsMillis(st.startTime);
              const end = tsMillis(st.endTime) ?? now;
              return (
                <tr data-job={j.id}>
                  <td><Link href={runHref(j.id)}>{j.id}</Link>{j.spec?.name && <span class="muted"> {j.spec.name}</span>}</td>
                  <td><StateBadge state={st.state} /></td>
                  <td class="reason" title={st.message}>{reasonText(st.state, st.reason)}{st.cause && st.cause !== "CAUSE_UNSPECIFIED" ? ` (${st.cause.toLowerCase().replace(/_/g, " ")})` : ""}</td>
                  <td>{j.owner}</td>
                  <td>{j.spec?.experiment && <Link href={experimentHref(j.spec.experiment)}>{j.spec.experiment}</Link>}</td>
                  <td>{(st.nodes ?? []).join(", ")}</td>
                  <td title={j.createTime}>{age(j.createTime, now)}</td>
                  <td>{start !== undefined ? duration(end - start) : ""}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {next && <button class="more" onClick={() => setPages(pages + 1)}>More</button>}
    </section>
  );
}
