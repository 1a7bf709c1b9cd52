// Server-Sent Events from droverd's gateway: a stream that resumes where it stopped after
// a reconnect, and the bookkeeping that keeps log bytes from being shown twice or lost.

/** One `event: log` of /api/v1/jobs/{id}/logs. */
export interface LogChunk {
  attempt?: string | number;
  rank?: number;
  stream?: string;
  offset?: string | number;
  text?: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The key of one byte stream: "attempt:rank:stream". Event ids are opaque to the app (one
 * position or a comma-separated list of them): they only go back to the server. */
export function streamKey(c: LogChunk): string {
  return `${Number(c.attempt ?? 0)}:${c.rank ?? 0}:${c.stream ?? "STDOUT"}`;
}

/**
 * Keeps, per byte stream, the offset up to which text was shown. `accept` returns the part
 * of a chunk not shown yet: the whole text, none of it (a repeat after a reconnect), or its
 * tail (a chunk that overlaps what was shown). A chunk that starts past the shown end is
 * taken whole and the gap counted in `gaps` (bytes the server no longer has).
 */
export class LogOffsets {
  private next = new Map<string, number>();
  gaps = 0;

  accept(c: LogChunk): string {
    const key = streamKey(c);
    const text = c.text ?? "";
    const start = Number(c.offset ?? 0);
    const have = this.next.get(key) ?? 0;
    const raw = encoder.encode(text);
    const end = start + raw.length;
    if (end <= have) return "";
    if (start > have) this.gaps += start - have;
    this.next.set(key, end);
    if (start >= have) return text;
    return decoder.decode(raw.subarray(have - start));
  }

  /** The byte offset up to which `key`'s text was taken. */
  offset(key: string): number {
    return this.next.get(key) ?? 0;
  }
}

/** `url` with `resume=<id>` set, for a reconnect that resumes after event `id`. */
export function withResume(url: string, id: string): string {
  if (!id) return url;
  const u = new URL(url, "http://x");
  u.searchParams.set("resume", id);
  return u.pathname + u.search;
}

/** The delay before the `n`th reconnect in a row (0-based): 0.5 s doubling up to 10 s. */
export function backoffMs(n: number): number {
  return Math.min(10000, 500 * Math.pow(2, n));
}

export type StreamState = "connecting" | "live" | "reconnecting" | "ended";

/** What ResumableStream needs of EventSource (a fake in tests). */
export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((ev: Event) => unknown) | null;
  onerror: ((ev: Event) => unknown) | null;
  addEventListener(type: string, listener: (ev: MessageEvent) => void): void;
  close(): void;
}

export interface StreamOptions {
  /** Called with each event's parsed data and id, by event name. */
  handlers: Record<string, (data: any, id: string) => void>;
  onState?: (s: StreamState) => void;
  /** The server's `event: error` (the stream failed after it started; it is not resumed). */
  onServerError?: (message: string) => void;
  /** Opens an event source (default: the browser's EventSource with the session cookie). */
  open?: (url: string) => EventSourceLike;
  /** Schedules a reconnect (default: setTimeout). */
  schedule?: (fn: () => void, ms: number) => unknown;
}

const CLOSED = 2;

/**
 * An SSE stream that ends for good on `event: end` (or close()), and otherwise reconnects:
 * the browser's own retry sends Last-Event-ID; when the browser gives up (an HTTP error),
 * it reopens the URL with `resume=<last id>` after a growing delay. Every handler sees each
 * event once per delivery; handlers that must not see repeats keep offsets (LogOffsets).
 */
export class ResumableStream {
  private source: EventSourceLike | undefined;
  private lastId = "";
  private failures = 0;
  private ended = false;
  private readonly opts: Required<StreamOptions>;

  constructor(private readonly url: string, opts: StreamOptions) {
    this.opts = {
      onState: () => {},
      onServerError: () => {},
      open: (u) => new EventSource(u) as unknown as EventSourceLike,
      schedule: (fn, ms) => setTimeout(fn, ms),
      ...opts,
      // `end` always closes the stream, handled or not.
      handlers: { end: () => {}, ...opts.handlers },
    };
    this.connect();
  }

  /** The id of the last event received: where a reconnect resumes. */
  get resumeId(): string {
    return this.lastId;
  }

  close(): void {
    this.ended = true;
    this.source?.close();
    this.source = undefined;
  }

  private connect(): void {
    if (this.ended) return;
    this.opts.onState(this.lastId ? "reconnecting" : "connecting");
    const source = this.opts.open(withResume(this.url, this.lastId));
    this.source = source;
    source.onopen = () => {
      this.failures = 0;
      this.opts.onState("live");
    };
    source.onerror = () => {
      if (this.ended || source !== this.source) return;
      if (source.readyState === CLOSED) {
        source.close();
        const delay = backoffMs(this.failures++);
        this.opts.onState("reconnecting");
        this.opts.schedule(() => {
          if (source === this.source) this.connect();
        }, delay);
      } else {
        this.opts.onState("reconnecting");
      }
    };
    // `event: error` from the server carries data; the browser's own error events do not.
    source.addEventListener("error", (ev: MessageEvent) => {
      if (this.ended || source !== this.source || typeof ev.data !== "string") return;
      let message = ev.data;
      try {
        const e = JSON.parse(ev.data)?.error;
        message = e ? `${e.code}: ${e.message}` : ev.data;
      } catch {
        // not JSON: show it as it is
      }
      this.close();
      this.opts.onState("ended");
      this.opts.onServerError(message);
    });
    for (const [name, handler] of Object.entries(this.opts.handlers)) {
      source.addEventListener(name, (ev: MessageEvent) => {
        if (this.ended || source !== this.source) return;
        if (ev.lastEventId) this.lastId = ev.lastEventId;
        let data: unknown;
        try {
          data = JSON.parse(ev.data);
        } catch {
          return;
        }
        if (name === "end") {
          this.close();
          this.opts.onState("ended");
        }
        handler(data, ev.lastEventId);
      });
    }
  }
}
