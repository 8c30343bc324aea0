/**
 * The vision encoder with the real 11B shapes and random bf16 weights on one image of 4 tiles
 * (harness.ts `encoderBench`): `deno bench --allow-read --allow-env bench/encoder_bench.ts`.
 * On a CPU adapter a full run takes a long time: `ENCODER_LAYERS=4,1` keeps 4 CLIP layers and 1
 * projection layer (same widths and token count), from which the full encoder's time scales by layers.
 */
import { getGpu } from "../mod.ts";
import { encoderBench } from "./harness.ts";

const gpu = await getGpu();
const cut = Deno.env.get("ENCODER_LAYERS")?.split(",").map(Number);
const bench = await encoderBench(gpu, cut);

Deno.bench(
  { name: "11B vision encoder: one 560×560 image, 4 tiles (6404 tokens)", n: 1, warmup: 0 },
  () => bench.run(),
);

if (cut) {
  console.log(
    `${bench.layers} of the full encoder's 40 layers: scale the per-layer time by 40 / ${bench.layers}`,
  );
}
