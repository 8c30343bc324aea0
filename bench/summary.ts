/**
 * `deno task bench`: runs the kernel benches (`deno bench --json bench/kernels_bench.ts`), prints them as
 * GB/s or GFLOP/s next to the streaming-read roofline, then runs `bench/run.ts --config bench_small` and
 * prints its JSON and a one-line summary. Extra arguments go to `bench/run.ts` (e.g. `--dtype q8`).
 *
 * @module
 */
import { KERNEL_CASES, OVERHEAD_CASE } from "./kernel_cases.ts";

interface BenchResult {
  name: string;
  results: { ok?: { n: number; avg: number; min: number }; failed?: unknown }[];
}

const deno = Deno.execPath();
const here = new URL(".", import.meta.url);
const file = (name: string) => new URL(name, here).pathname;

async function kernelBenches(): Promise<void> {
  console.log("kernel benches (deno bench bench/kernels_bench.ts) …");
  const out = await new Deno.Command(deno, {
    args: ["bench", "--json", "--allow-read", "--allow-env", "--no-prompt", file("kernels_bench.ts")],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`deno bench failed (exit ${out.code})\n${text.slice(-2000)}`);
  const benches: BenchResult[] = JSON.parse(text.slice(text.indexOf("{"))).benches;
  const avgMs = new Map<string, number>();
  for (const b of benches) {
    const r = b.results[0];
    if (r?.ok) avgMs.set(b.name, r.ok.avg / 1e6);
    else console.log(`  ${b.name}: failed ${JSON.stringify(r?.failed ?? r)}`);
  }
  const overhead = avgMs.get(OVERHEAD_CASE) ?? 0;
  const rows: [string, string, string, string][] = [];
  let roofline = 0;
  for (const c of KERNEL_CASES) {
    const ms = avgMs.get(c.name);
    if (ms === undefined) continue;
    if (!c.metric) {
      rows.push([c.name, `${ms.toFixed(2)} ms`, "", ""]);
      continue;
    }
    const net = c.subtractOverhead ? Math.max(ms - overhead, 1e-3) : ms;
    const rate = c.amount / (net / 1000) / 1e9;
    if (c.name.startsWith("stream_read")) roofline = rate;
    const ofRoof = c.metric === "GB/s" && roofline
      ? `${((rate / roofline) * 100).toFixed(0)}% of roofline`
      : "";
    const per = c.reps > 1 ? `${(net / c.reps).toFixed(2)} ms/run` : `${net.toFixed(2)} ms`;
    rows.push([c.name, per, `${rate.toFixed(c.metric === "GB/s" ? 2 : 1)} ${c.metric}`, ofRoof]);
  }
  const w = rows.reduce((a, r) => r.map((s, i) => Math.max(a[i], s.length)), [0, 0, 0, 0]);
  for (const r of rows) {
    console.log(`  ${r.map((s, i) => i === 0 ? s.padEnd(w[i]) : s.padStart(w[i])).join("  ")}`);
  }
  console.log(`  (kernel times net of the ${overhead.toFixed(2)} ms submission + readback overhead)`);
}

async function modelRun(): Promise<void> {
  const args = [
    "run",
    "--allow-read",
    "--allow-env",
    "--no-prompt",
    file("run.ts"),
    "--config",
    "bench_small",
  ];
  console.log(
    `\n${["deno", ...args.slice(4).map((a) => a.replace(/^.*\/bench\//, "bench/"))].join(" ")} --json …`,
  );
  const out = await new Deno.Command(deno, {
    args: [...args, "--json", ...Deno.args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) throw new Error(`bench/run.ts failed (exit ${out.code})`);
  const r = JSON.parse(text);
  const { details: _, ...headline } = r;
  console.log(JSON.stringify(headline));
  console.log(
    `${r.config} (${r.weight_dtype}, ${r.adapter}): prefill ${r.prefill_tok_s.toFixed(1)} tokens/s, decode ` +
      `${r.decode_tok_s.toFixed(2)} tokens/s = ${r.decode_weight_gb_s.toFixed(2)} GB/s of weights ` +
      `(${((r.decode_weight_gb_s / r.roofline_gb_s) * 100).toFixed(0)}% of the ${
        r.roofline_gb_s.toFixed(1)
      } GB/s ` +
      `roofline); GPU ${(r.gpu_bytes / 2 ** 30).toFixed(2)} GiB, host peak ${
        (r.host_peak_rss_bytes / 2 ** 30).toFixed(2)
      } GiB`,
  );
}

if (import.meta.main) {
  try {
    await kernelBenches();
    await modelRun();
  } catch (e) {
    console.error(`error: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
