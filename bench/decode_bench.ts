/**
 * Throughput of the bundled tiny decoder (`deno task bench`): one prefill of 5 tokens and one cached
 * decode step. The real benchmarks (11B-shaped weights) come with the speed work.
 */
import { fileURLToPath } from "node:url";
import { loadCheckpoint } from "../mod.ts";

const model = await loadCheckpoint(fileURLToPath(new URL("../assets/tiny-random", import.meta.url)));
const L = 64;
model.setup_caches(1, { decoder_max_seq_len: L });
const mask = (row: number, n: number) => {
  const data = new Uint8Array(n * L);
  for (let i = 0; i < n; i++) data.fill(1, i * L, i * L + row + i + 1);
  return { data, shape: [1, n, L] };
};

Deno.bench("tiny decoder: prefill 5 tokens", async () => {
  model.reset_caches();
  const t = model.forward({ data: new Int32Array([1, 2, 3, 4, 5]), shape: [1, 5] }, {
    mask: mask(0, 5),
    input_pos: { data: new Int32Array([0, 1, 2, 3, 4]), shape: [1, 5] },
  });
  await t.read();
  t.destroy();
});

Deno.bench("tiny decoder: one cached decode step", async () => {
  model.reset_caches();
  const t = model.forward({ data: new Int32Array([7]), shape: [1, 1] }, {
    mask: mask(0, 1),
    input_pos: { data: new Int32Array([0]), shape: [1, 1] },
  });
  await t.read();
  t.destroy();
});
