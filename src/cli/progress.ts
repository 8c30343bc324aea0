/**
 * Progress of loading weights onto the GPU, on stderr: a redrawn line on a terminal, a few plain
 * lines otherwise.
 *
 * @module
 */
import type { LoadProgress } from "../checkpoint/upload.ts";

const MB = 1024 * 1024;

/** A load-progress callback that reports to stderr. */
export function loadProgress(label = "loading weights"): LoadProgress {
  const tty = Deno.stderr.isTerminal();
  const enc = new TextEncoder();
  const start = performance.now();
  let lastQuarter = -1;
  return (done, total) => {
    const secs = (performance.now() - start) / 1000;
    const pct = total ? (100 * done) / total : 100;
    const line =
      `${label}: ${(done / MB).toFixed(1)} / ${(total / MB).toFixed(1)} MiB (${pct.toFixed(0)}%) ` +
      `${(done / MB / Math.max(secs, 1e-3)).toFixed(0)} MiB/s`;
    if (tty) {
      Deno.stderr.writeSync(enc.encode(`\r${line}\x1b[K${done >= total ? "\n" : ""}`));
    } else {
      const quarter = Math.floor(pct / 25);
      if (quarter !== lastQuarter && total > 64 * MB) {
        lastQuarter = quarter;
        console.error(line);
      }
    }
  };
}
