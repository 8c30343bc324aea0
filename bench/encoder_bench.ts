/**
 * The vision encoder with the real 11B shapes (`llama3_2_vision_encoder` as torchtune's
 * `llama3_2_vision_11b` builds it: CLIP 32 × 1280, 8 projection layers, 560-pixel tiles) and random
 * bf16 weights, on one image of 4 tiles (2×2): `deno bench --allow-read --allow-env bench/encoder_bench.ts`.
 * On a CPU adapter a full run takes a long time: `ENCODER_LAYERS=4,1` keeps 4 CLIP layers and 1
 * projection layer (same widths and token count), from which the full encoder's time scales by layers.
 */
import {
  BufferOwner,
  getGpu,
  LLAMA3_2_VISION_11B_ENCODER_ARGS,
  llama3_2_vision_encoder,
  Recorder,
} from "../mod.ts";
import { type ParamSource, uploadParameters } from "../src/checkpoint/upload.ts";
import { Readback } from "../src/gpu/readback.ts";

const gpu = await getGpu();
const scaled = Deno.env.get("ENCODER_LAYERS")?.split(",").map(Number);
const args = { ...LLAMA3_2_VISION_11B_ENCODER_ARGS };
if (scaled) {
  args.clip_num_layers = scaled[0];
  args.num_layers_projection = scaled[1];
  args.clip_hidden_states = LLAMA3_2_VISION_11B_ENCODER_ARGS.clip_hidden_states!.map((i) =>
    Math.min(i, scaled[0])
  )
    .filter((v, i, a) => a.indexOf(v) === i);
}
const encoder = llama3_2_vision_encoder(args);
const layers = args.clip_num_layers + args.num_layers_projection;
const owner = new BufferOwner(gpu);

/** Random bf16 weights (std about 0.02, gates and norms near their usual values). */
function randomSource(name: string, shape: number[]): ParamSource {
  let state = [...name].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0, 2166136261);
  const rowElems = shape.length < 2
    ? shape.reduce((a, b) => a * b, 1)
    : shape.slice(1).reduce((a, b) => a * b, 1);
  const base = /norm.*weight|\.scale$|gate/.test(name) ? 1 : 0;
  return {
    dtype: "BF16",
    shape,
    describe: name,
    read: (_rowStart: number, rowCount: number) => {
      const n = rowCount * rowElems;
      const out = new Uint16Array(n);
      const f = new Float32Array(1);
      const u = new Uint32Array(f.buffer);
      for (let i = 0; i < n; i++) {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        f[0] = base + ((state / 2 ** 32) - 0.5) * 0.07;
        out[i] = u[0] >>> 16;
      }
      return Promise.resolve(new Uint8Array(out.buffer));
    },
  };
}

const sources = new Map(encoder.named_parameters().map(([n, p]) => [n, randomSource(n, p.shape)]));
await uploadParameters(
  { named_parameters: () => encoder.named_parameters(), attach: () => owner, destroy: () => owner.destroy() },
  sources,
  gpu,
);
const T = 560;
const images = new Float32Array(4 * 3 * T * T).map((_, i) => Math.sin(i) * 0.5);
const input = {
  images: { data: images, shape: [1, 1, 4, 3, T, T] },
  aspect_ratio: { data: new Int32Array([2, 2]), shape: [1, 1, 2] },
};

Deno.bench(
  { name: "11B vision encoder: one 560×560 image, 4 tiles (6404 tokens)", n: 1, warmup: 0 },
  async () => {
    const rec = new Recorder(gpu);
    const { buffer } = encoder.record(rec, input);
    const rb = new Readback(rec, buffer, 0, 16);
    rec.temps.adopt(buffer);
    rec.submit();
    await rb.read();
  },
);

if (scaled) {
  console.log(`${layers} of the full encoder's 40 layers: scale the per-layer time by 40 / ${layers}`);
}
