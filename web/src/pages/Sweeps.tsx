import { useEffect, useState } from "preact/hooks";
import { api, query, type ListSweepsResponse, type Sweep } from "../api";
import { age, metricValue, num, reasonText } from "../format";
import { Link, sweepHref } from "../components/Link";
import { StateBadge } from "../components/StateBadge";
import { useInterval, useNow } from "../hooks";
import { goalText } from "../sweep";

const REFRESH_MS = 5000;

/** The caller's sweeps (every sweep for an admin or a viewer), newest first, refreshed
 * every 5 s. */
export function SweepsPage() {
  const [sweeps, setSweeps] = useState<Sweep[] | undefined>(undefined);
  const [next, setNext] = useState("");
  const [pages, setPages] = useState(1);
  const [error, setError] = useState("");
  const now = useNow(1000);

  const load = async () => {
    try {
      let all: Sweep[] = [];
      let token = "";
      for (let p = 0; p < pages; p++) {
        const r = await api<ListSweepsResponse>(`/sweeps${query([["pageSize", 50], ["pageToken", token]])}`);
        all = all.concat(r.sweeps ?? []);
        token = r.nextPageToken ?? "";
        if (!token) break;
      }
      setSweeps(all);
      setNext(token);
      setError("");
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => void load(), [pages]);
  useInterval(load, REFRESH_MS, [pages]);

  return (
    <section>
      <h1>Sweeps</h1>
      {error && <p class="error" role="alert">{error}</p>}
      {sweeps === undefined ? <p class="muted">Loading…</p> : sweeps.length === 0 ? (
        <p class="muted" data-testid="no-sweeps">No sweeps. Submit one with <code>drover sweep submit -f sweep.json</code>.</p>
      ) : (
        <table class="grid runs" data-testid="sweeps-table">
          <thead>
            <tr><th>sweep</th><th>state</th><th>reason</th><th>primary metric</th><th>trials</th><th>best</th><th>owner</th><th>age</th></tr>
          </thead>
          <tbody>
            {sweeps.map((s) => {
              const st = s.status ?? {};
              return (
                <tr data-sweep={s.id}>
                  <td><Link href={sweepHref(s.id)}>{s.id}</Link>{s.spec?.name && <span class="muted"> {s.spec.name}</span>}</td>
                  <td><StateBadge state={st.state} /></td>
                  <td class="reason" title={st.message}>{reasonText(st.state, st.reason)}</td>
                  <td>{s.spec?.primaryMetricName} <span class="muted">({goalText(s.spec?.primaryMetricGoal)})</span></td>
                  <td>{num(s.trialCount ?? 0)}{s.spec?.maxTotalTrials ? ` / ${s.spec.maxTotalTrials}` : ""}</td>
                  <td>{s.bestResult !== undefined ? metricValue(num(s.bestResult)) : ""}</td>
                  <td>{s.owner}</td>
                  <td title={s.createTime}>{age(s.createTime, now)}</td>
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
