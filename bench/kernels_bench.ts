/**
 * Per-kernel benchmarks (`deno bench --allow-read --allow-env bench/kernels_bench.ts`): the
 * streaming-read roofline, bf16 matvec and matmul, attention over 1601 and 4096 keys, and one decode
 * step of `bench_small` (cases in `bench/kernel_cases.ts`). Times are per iteration of several kernel
 * runs; `deno task bench` converts them to GB/s and GFLOP/s next to the roofline.
 *
 * @module
 */
import { getGpu } from "../mod.ts";
import { type CaseRunner, KERNEL_CASES } from "./kernel_cases.ts";

const gpu = await getGpu({ quiet: true });
const runners: CaseRunner[] = [];
for (const c of KERNEL_CASES) runners.push(await c.setup(gpu));

KERNEL_CASES.forEach((c, i) => {
  Deno.bench({ name: c.name, group: c.metric ?? "overhead", n: c.n, warmup: c.warmup }, async () => {
    await runners[i].run();
  });
});
