import type { ComponentChildren } from "preact";
import { navigate } from "../router";

/** An in-app link: a plain <a href> (open in a new tab works) that navigates in place. */
export function Link(props: { href: string; children: ComponentChildren; class?: string; title?: string }) {
  return (
    <a
      href={props.href}
      class={props.class}
      title={props.title}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(props.href);
      }}
    >
      {props.children}
    </a>
  );
}

export function runHref(id: string): string {
  return `/runs/${encodeURIComponent(id)}`;
}

export function experimentHref(name: string): string {
  return `/experiments/${encodeURIComponent(name)}`;
}

export function sweepHref(id: string): string {
  return `/sweeps/${encodeURIComponent(id)}`;
}
