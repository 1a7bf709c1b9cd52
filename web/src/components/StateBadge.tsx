import { stateLabel } from "../format";

/** A job's or node's state as a coloured label (colour by state class in style.css). */
export function StateBadge(props: { state?: string }) {
  const s = props.state ?? "STATE_UNSPECIFIED";
  return <span class={`badge state-${s.toLowerCase()}`} data-state={s}>{stateLabel(s)}</span>;
}
