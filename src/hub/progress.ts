/**
 * The download progress display on stderr: on a terminal one line redrawn in place (`\r`) with bytes,
 * speed and time left; otherwise (a log, CI) a plain line per finished file and a summary.
 *
 * @module
 */
import type { DownloadProgress } from "./download.ts";

/** Where the display writes: stderr by default. */
export interface ProgressSink {
  /** Writes some of `p`, returning how many bytes were written. */
  writeSync(p: Uint8Array): number;
  /** Whether the output is a terminal (redrawn line) or not (plain lines). */
  isTerminal(): boolean;
}

/** `1.5 GB`, `320.0 kB`, `12 B` (decimal units, as the Hub shows sizes). */
export function formatBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) n /= 1000, i++;
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

/** `1h05m`, `3m07s`, `42s`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

/**
 * An `onProgress` callback for `downloadModel` that draws the progress on `sink` (stderr): on a terminal
 * `[2/7] model.safetensors  1.2 GB / 4.9 GB (24%)  35.1 MB/s  ETA 1m45s`, redrawn at most 10 times a
 * second; otherwise `fetched model.safetensors (4.9 GB) [2/7]` per file and a final summary line.
 */
export function progressReporter(
  sink: ProgressSink = Deno.stderr,
  now: () => number = () => performance.now(),
): (p: DownloadProgress) => void {
  const encoder = new TextEncoder();
  const write = (text: string): void => {
    const bytes = encoder.encode(text);
    for (let off = 0; off < bytes.length;) off += sink.writeSync(bytes.subarray(off));
  };
  const terminal = sink.isTerminal();
  const start = now();
  const samples: { t: number; bytes: number }[] = []; // the last few seconds, for the speed
  let lastDraw = -Infinity;
  let filesDone = -1;
  let finished = false;

  return (p: DownloadProgress): void => {
    if (finished) return;
    const t = now();
    samples.push({ t, bytes: p.bytesDone });
    while (samples.length > 2 && t - samples[0].t > 5000) samples.shift();
    const span = (t - samples[0].t) / 1000;
    const speed = span > 0 ? (p.bytesDone - samples[0].bytes) / span : 0;
    const fileFinished = p.filesDone > filesDone;
    filesDone = p.filesDone;
    const last = p.filesDone === p.filesTotal && p.done === p.total;
    const elapsed = (t - start) / 1000;
    const summary = p.bytesTotal === 0
      ? `all ${p.filesTotal} files already in the cache\n`
      : `fetched ${p.filesTotal} files, ${formatBytes(p.bytesDone)} in ${formatDuration(elapsed)}` +
        (elapsed > 0 ? ` (${formatBytes(p.bytesDone / elapsed)}/s)\n` : "\n");

    if (!terminal) {
      if (fileFinished && p.total > 0 && p.done === p.total) {
        write(`fetched ${p.file} (${formatBytes(p.total)}) [${p.filesDone}/${p.filesTotal}]\n`);
      }
      if (last) write(summary), finished = true;
      return;
    }
    if (!last && !fileFinished && t - lastDraw < 100) return;
    lastDraw = t;
    const pct = p.bytesTotal > 0 ? ` (${Math.floor((100 * p.bytesDone) / p.bytesTotal)}%)` : "";
    const eta = speed > 0 && p.bytesDone < p.bytesTotal
      ? `  ETA ${formatDuration((p.bytesTotal - p.bytesDone) / speed)}`
      : "";
    const line = `[${Math.min(p.filesDone + 1, p.filesTotal)}/${p.filesTotal}] ${p.file}  ` +
      `${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)}${pct}  ${formatBytes(speed)}/s${eta}`;
    write(`\r${line}\x1b[K`);
    if (last) write(`\r${summary.trimEnd()}\x1b[K\n`), finished = true;
  };
}
