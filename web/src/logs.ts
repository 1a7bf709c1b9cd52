// Log text kept as lines per (rank, stream), fed by the chunks of the log stream (which
// cut lines anywhere), and the filtering the log view shows.
import { LogOffsets, type LogChunk } from "./sse";

export interface LogLine {
  rank: number;
  stream: string;
  text: string;
}

/** Splits chunks into whole lines per byte stream; a line's last part waits for its
 * newline (shown anyway by `pending`). Repeated bytes after a reconnect are dropped. */
export class LogLines {
  readonly lines: LogLine[] = [];
  private partial = new Map<string, LogLine>();
  private offsets = new LogOffsets();

  /** Adds a chunk; returns whether anything new was added. */
  add(c: LogChunk): boolean {
    const text = this.offsets.accept(c);
    if (!text) return false;
    const rank = c.rank ?? 0;
    const stream = c.stream ?? "STDOUT";
    const key = `${rank}:${stream}`;
    const parts = text.split("\n");
    const head = this.partial.get(key);
    parts[0] = (head?.text ?? "") + parts[0];
    this.partial.delete(key);
    for (let i = 0; i < parts.length - 1; i++) this.lines.push({ rank, stream, text: parts[i] });
    const last = parts[parts.length - 1];
    if (last) this.partial.set(key, { rank, stream, text: last });
    return true;
  }

  /** Adds a line of the page's own (a marker between attempts), shown under every filter. */
  mark(text: string): void {
    this.lines.push({ rank: -1, stream: "MARK", text });
  }

  /** Lines not ended by a newline yet (the end of a running rank's output). */
  pending(): LogLine[] {
    return [...this.partial.values()];
  }

  /** Bytes the server no longer had when they were asked for. */
  get gaps(): number {
    return this.offsets.gaps;
  }
}

export interface LogFilter {
  rank?: number; // undefined: every rank
  stream?: string; // undefined: both
  search?: string; // case-insensitive substring
}

/** The lines to show under `f`, and how many there are in all. */
export function filterLines(lines: ReadonlyArray<LogLine>, f: LogFilter): LogLine[] {
  const needle = (f.search ?? "").toLowerCase();
  return lines.filter((l) => l.stream === "MARK" ||
    ((f.rank === undefined || l.rank === f.rank) &&
    (f.stream === undefined || l.stream === f.stream) &&
    (!needle || l.text.toLowerCase().includes(needle))));
}

/** One line as shown when several ranks are interleaved: "[rank 1] text", stderr marked. */
export function lineLabel(l: LogLine, manyRanks: boolean): string {
  if (l.stream === "MARK") return l.text;
  const prefix = manyRanks ? `[rank ${l.rank}${l.stream === "STDERR" ? " err" : ""}] ` : l.stream === "STDERR" ? "[err] " : "";
  return prefix + l.text;
}
