import { useEffect, useState } from "preact/hooks";
import { api, roleOf, type ListNodesResponse, type Node, type User } from "../api";
import { age, mib, num } from "../format";
import { Link, runHref } from "../components/Link";
import { StateBadge } from "../components/StateBadge";
import { useInterval, useNow } from "../hooks";

/** The nodes: state, resources used of offered, GPUs, running jobs; cordon, uncordon and
 * drain for admins. */
export function NodesPage(props: { user: User }) {
  const [nodes, setNodes] = useState<Node[] | undefined>(undefined);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState("");
  const now = useNow(1000);
  const admin = roleOf(props.user) === "ADMIN";

  const load = async () => {
    try {
      const r = await api<ListNodesResponse>("/nodes");
      setNodes((r.nodes ?? []).slice().sort((a, b) => a.name.localeCompare(b.name)));
      setError("");
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => void load(), []);
  useInterval(load, 3000);

  const act = async (name: string, action: "cordon" | "uncordon" | "drain") => {
    if (action === "drain" && !confirm(`Drain ${name}? Its running jobs finish; no new work starts there.`)) return;
    setBusy(name);
    try {
      await api(`/nodes/${encodeURIComponent(name)}/${action}`, { method: "POST", body: {} });
      await load();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy("");
    }
  };

  return (
    <section>
      <h1>Nodes</h1>
      {error && <p class="error" role="alert">{error}</p>}
      {nodes === undefined ? <p class="muted">Loading…</p> : nodes.length === 0 ? <p class="muted">No nodes have joined.</p> : (
        <table class="grid nodes" data-testid="nodes-table">
          <thead>
            <tr><th>node</th><th>state</th><th>cpus</th><th>memory</th><th>GPUs</th><th>running</th><th>labels</th><th>last seen</th>{admin && <th />}</tr>
          </thead>
          <tbody>
            {nodes.map((n) => {
              const cap = n.capacity ?? {};
              const used = n.allocated ?? {};
              return (
                <tr data-node={n.name}>
                  <td><strong>{n.name}</strong><div class="muted small">{(n.addresses ?? []).join(", ")}{n.agentVersion ? ` · ${n.agentVersion}` : ""}</div></td>
                  <td><StateBadge state={n.state} />{n.reason && <div class="muted small">{n.reason}</div>}</td>
                  <td><Usage used={used.cpus ?? 0} cap={cap.cpus ?? 0} label={`${used.cpus ?? 0} / ${cap.cpus ?? 0}`} /></td>
                  <td><Usage used={num(used.memoryMib)} cap={num(cap.memoryMib)} label={`${mib(num(used.memoryMib))} / ${mib(num(cap.memoryMib))}`} /></td>
                  <td>
                    {(cap.gpus ?? 0) > 0 ? `${used.gpus ?? 0} / ${cap.gpus}` : "—"}
                    {(n.gpus ?? []).map((g) => <div class="muted small">{g.index ?? 0}: {g.name}{g.memoryMib ? ` (${mib(num(g.memoryMib))})` : ""}</div>)}
                  </td>
                  <td>{(n.runningJobs ?? []).map((id) => <div><Link href={runHref(id)}>{id}</Link></div>)}</td>
                  <td>{Object.entries(n.labels ?? {}).map(([k, v]) => <span class="tag">{k}={v}</span>)}</td>
                  <td>{age(n.lastSeenTime, now)}</td>
                  {admin && (
                    <td class="actions">
                      {n.state === "READY" && <button disabled={busy === n.name} onClick={() => act(n.name, "cordon")}>cordon</button>}
                      {(n.state === "CORDONED" || n.state === "DRAINING") && <button disabled={busy === n.name} onClick={() => act(n.name, "uncordon")}>uncordon</button>}
                      {n.state !== "DRAINING" && n.state !== "DOWN" && <button disabled={busy === n.name} onClick={() => act(n.name, "drain")}>drain</button>}
                    </td>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}

function Usage(props: { used: number; cap: number; label: string }) {
  const frac = props.cap > 0 ? Math.min(1, props.used / props.cap) : 0;
  return (
    <div class="usage" title={props.label}>
      <progress value={frac} max={1} />
      <span class="small">{props.label}</span>
    </div>
  );
}
