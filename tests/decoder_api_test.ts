/**
 * The public API around the decoder: builder arguments, bad inputs to forward and the caches, and
 * checkpoint folders that are damaged or do not match the config. Every error must say what is wrong.
 */
import assert from "node:assert/strict";
import { testGpu } from "./helpers/gpu.ts";
import { join } from "node:path";
import {
  Gpu,
  LLAMA3_2_VISION_11B_DECODER_ARGS,
  LLAMA3_2_VISION_90B_DECODER_ARGS,
  llama3_2_vision_decoder,
  loadCheckpoint,
  resolveDecoderArgs,
  scale_hidden_dim_for_mlp,
} from "../mod.ts";
import { checkpointDir, loadDecoder } from "./helpers/checkpoints.ts";
import { fixtureDir, maxAbsDiff } from "./helpers/golden.ts";
import { writeSafetensors } from "./helpers/safetensors_writer.ts";

const gpu = await testGpu();
const TINY = JSON.parse(await Deno.readTextFile(join(fixtureDir("tiny_gqa"), "builder_args.json"))).kwargs;

const ids = (data: number[], shape = [1, data.length]) => ({ data: new Int32Array(data), shape });

Deno.test("scale_hidden_dim_for_mlp matches torchtune's examples", () => {
  assert.deepEqual([64, 96, 128, 4096].map((d) => scale_hidden_dim_for_mlp(d)), [256, 256, 512, 11008]);
});

Deno.test("builder: torchtune defaults and layer layout", () => {
  const model = llama3_2_vision_decoder(TINY);
  const names = model.named_parameters().map(([n]) => n);
  assert.equal(names.length, 66);
  assert.ok(names.includes("layers.1.fusion_layer.attn.q_norm.scale"));
  assert.ok(!names.includes("layers.0.fusion_layer.attn.q_norm.scale"));
  assert.ok(names.includes("tok_embeddings.fusion_embedding.weight"));
  const r = resolveDecoderArgs({ ...TINY, rope_base: undefined, num_kv_heads: null });
  assert.equal(r.rope_base, 500000);
  assert.equal(r.num_kv_heads, r.num_heads);
  assert.equal(r.intermediate_dim, 256);
  assert.deepEqual(resolveDecoderArgs({ ...TINY, num_layers: 3, fusion_interval: 1 }).fusion_layer_indices, [
    0,
    1,
    2,
  ]);
  assert.deepEqual(resolveDecoderArgs(LLAMA3_2_VISION_11B_DECODER_ARGS).fusion_layer_indices.length, 8);
  assert.deepEqual(resolveDecoderArgs(LLAMA3_2_VISION_90B_DECODER_ARGS).fusion_layer_indices.length, 20);
});

Deno.test("builder: bad arguments are rejected with the reason", () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ num_layers: 0 }, /num_layers must be a positive integer/],
    [{ embed_dim: 64.5 }, /embed_dim must be a positive integer/],
    [{ vocab_size: -3 }, /vocab_size must be a positive integer/],
    [{ num_heads: 4, num_kv_heads: 3 }, /multiple of num_kv_heads/],
    [{ embed_dim: 66, num_heads: 4 }, /divisible by num_heads/],
    [{ embed_dim: 60, num_heads: 4, num_kv_heads: 2 }, /head_dim .* must be even/],
    [{ rope_base: 0 }, /rope_base/],
    [{ intermediate_dim: 0 }, /intermediate_dim must be a positive integer/],
    [{ typo_arg: 1 }, /unknown argument "typo_arg"/],
  ];
  for (const [patch, re] of bad) {
    assert.throws(() => llama3_2_vision_decoder({ ...TINY, ...patch }), re, JSON.stringify(patch));
  }
});

Deno.test("forward before loading weights says how to load them", () => {
  const model = llama3_2_vision_decoder(TINY);
  assert.throws(() => model.forward(ids([1, 2])), /loadCheckpoint/);
});

Deno.test("forward: bad tokens, lengths, shapes and masks give clear errors", async () => {
  using model = await loadDecoder(await checkpointDir("tiny_gqa"), { gpu });
  assert.throws(() => model.forward(ids([1, 328])), /token id 328 .* outside \[0, 328\)/);
  assert.throws(() => model.forward(ids([1, -1])), /token id -1/);
  assert.throws(() => model.forward({ data: [1, 2.5], shape: [1, 2] }), /token id 2.5/);
  assert.throws(() => model.forward({ data: new Int32Array(3), shape: [3] }), /\[batch, seq\]/);
  assert.throws(() => model.forward({ data: new Int32Array(3), shape: [1, 4] }), /needs 4 values/);
  assert.throws(() => model.forward(ids(new Array(129).fill(1))), /exceeds the model's max_seq_len 128/);
  assert.throws(
    () => model.forward(ids([1, 2, 3]), { mask: { data: new Uint8Array(4), shape: [1, 2, 2] } }),
    /mask has shape \[1,2,2\] but must be \[1, 3, 3\]/,
  );
  assert.throws(
    () => model.forward(ids([1, 2]), { input_pos: { data: new Int32Array([0, 128]), shape: [1, 2] } }),
    /input_pos value 128 is outside/,
  );
  assert.throws(
    () =>
      model.forward(ids([1, 2]), { encoder_input: { data: new Float32Array(10 * 32), shape: [1, 10, 32] } }),
    /encoder_input has shape \[1,10,32\] but must be \[1, S, 64\]/,
  );
  assert.throws(
    () =>
      model.forward(ids([1, 2]), {
        encoder_input: { data: new Float32Array(5 * 64), shape: [1, 5, 64] },
        encoder_mask: { data: new Uint8Array(2 * 4), shape: [1, 2, 4] },
      }),
    /encoder_mask has shape \[1,2,4\] but must be \[1, 2, 5\]/,
  );
  // Booleans work as masks too (True = attend).
  const causal = [true, false, true, true];
  const a = await model.forward(ids([3, 4]), { mask: { data: causal, shape: [1, 2, 2] } }).read();
  const b = await model.forward(ids([3, 4])).read();
  assert.equal(maxAbsDiff(a.data, b.data), 0);
});

Deno.test("caches: required arguments, batch size and overflow", async () => {
  using model = await loadDecoder(await checkpointDir("tiny_gqa"), { gpu });
  assert.equal(model.caches_are_enabled(), false);
  assert.throws(() => model.reset_caches(), /setup_caches/);
  assert.throws(() => model.setup_caches(0), /batch_size must be a positive integer/);
  model.setup_caches(1, { decoder_max_seq_len: 4, encoder_max_seq_len: 8 });
  assert.equal(model.caches_are_enabled(), true);
  assert.equal(model.decoder_max_cache_seq_len, 4);
  const mask = (s: number, row0: number) => {
    const data = new Uint8Array(s * 4);
    for (let i = 0; i < s; i++) for (let j = 0; j <= row0 + i; j++) data[i * 4 + j] = 1;
    return { data, shape: [1, s, 4] };
  };
  const pos = (p: number[]) => ({ data: new Int32Array(p), shape: [1, p.length] });
  assert.throws(() => model.forward(ids([1, 2])), /causal masks must be provided/);
  assert.throws(() => model.forward(ids([1, 2]), { mask: mask(2, 0) }), /input positions must be provided/);
  assert.throws(
    () =>
      model.forward(ids([1, 2]), {
        mask: mask(2, 0),
        input_pos: pos([0, 1]),
        encoder_input: { data: new Float32Array(8 * 64), shape: [1, 8, 64] },
      }),
    /encoder_mask/,
  );
  assert.throws(
    () => model.forward(ids([1, 2, 1, 2], [2, 2]), { mask: mask(2, 0), input_pos: pos([0, 1]) }),
    /batch 2 but the caches were set up for batch 1/,
  );
  await model.forward(ids([1, 2, 3]), { mask: mask(3, 0), input_pos: pos([0, 1, 2]) }).read();
  assert.throws(
    () => model.forward(ids([4, 5]), { mask: mask(2, 3), input_pos: pos([3, 4]) }),
    /3 are used and 2 more do not fit/,
  );
  model.reset_caches();
  const again = await model.forward(ids([1, 2, 3]), { mask: mask(3, 0), input_pos: pos([0, 1, 2]) }).read();
  assert.equal(again.shape.join(), "1,3,320");
});

Deno.test("loadCheckpoint: missing, extra and misshapen tensors are named", async () => {
  const { Checkpoint } = await import("../src/checkpoint/safetensors.ts");
  const dir = await checkpointDir("tiny_gqa");
  const ckpt = await Checkpoint.open(dir);
  const tensors = new Map<string, { dtype: string; shape: number[]; data: Uint8Array }>();
  for (const [name, e] of ckpt.tensors) {
    tensors.set(name, { dtype: e.dtype, shape: e.shape, data: await ckpt.read(e) });
  }
  ckpt.close();
  const variant = async (edit: (m: typeof tensors) => void) => {
    const d = await checkpointDir("tiny_gqa");
    const copy = new Map(tensors);
    edit(copy);
    await writeSafetensors(join(d, "model.safetensors"), copy);
    return d;
  };
  const missing = "language_model.model.layers.2.mlp.down_proj.weight";
  await assert.rejects(loadCheckpoint(await variant((m) => m.delete(missing)), { gpu }), new RegExp(missing));
  await assert.rejects(
    loadCheckpoint(await variant((m) => m.set("language_model.model.extra.weight", tensors.get(missing)!)), {
      gpu,
    }),
    /language_model\.model\.extra\.weight/,
  );
  const norm = "language_model.model.norm.weight";
  await assert.rejects(
    loadCheckpoint(
      await variant((m) => m.set(norm, { dtype: "F32", shape: [32], data: new Uint8Array(128) })),
      { gpu },
    ),
    new RegExp(norm.replaceAll(".", "\\.")),
  );
});

Deno.test("loadCheckpoint: truncated or corrupt files and a missing config are errors naming the file", async () => {
  const dir = await checkpointDir("tiny_gqa");
  const path = join(dir, "model.safetensors");
  const bytes = await Deno.readFile(path);
  for (const cut of [4, 100, Math.floor(bytes.length / 2), bytes.length - 1]) {
    await Deno.writeFile(path, bytes.subarray(0, cut));
    await assert.rejects(loadCheckpoint(dir, { gpu }), /model\.safetensors/, `cut at ${cut}`);
  }
  const garbage = bytes.slice();
  garbage.fill(0x7b, 8, 40);
  await Deno.writeFile(path, garbage);
  await assert.rejects(loadCheckpoint(dir, { gpu }), /model\.safetensors/);
  await Deno.remove(join(dir, "config.json"));
  await assert.rejects(loadCheckpoint(dir, { gpu }), /config\.json/);
});

Deno.test("destroy() frees the weights; forward afterwards says so", async () => {
  const model = await loadDecoder(await checkpointDir("tiny_gqa"), { gpu });
  const t = model.forward(ids([1, 2]));
  await t.read();
  t.destroy();
  await assert.rejects(t.read(), /destroyed/);
  model.destroy();
  assert.throws(() => model.forward(ids([1, 2])), /no weights/);
});

Deno.test("int64 (BigInt64Array) ids and positions are accepted like Int32Array", async () => {
  using model = await loadDecoder(await checkpointDir("tiny_gqa"), { gpu });
  const a = await model.forward(ids([5, 6, 7])).read();
  const b = await model.forward({
    data: new BigInt64Array([5n, 6n, 7n]) as unknown as Int32Array,
    shape: [1, 3],
  }, {
    input_pos: { data: new BigInt64Array([0n, 1n, 2n]) as unknown as Int32Array, shape: [3] },
  }).read();
  assert.equal(maxAbsDiff(a.data, b.data), 0);
});

Deno.test("device loss: forward and pending reads fail with a clear error; a new device works", async () => {
  const own = await Gpu.acquire({ quiet: true });
  const model = await loadDecoder(await checkpointDir("tiny_gqa"), { gpu: own });
  const pending = model.forward(ids([1, 2, 3]));
  own.destroy();
  await assert.rejects(pending.read(), /lost|destroyed|WebGPU/i);
  await new Promise((r) => setTimeout(r, 0));
  assert.throws(() => model.forward(ids([1, 2])), /device was lost/);
  using fresh = await loadDecoder(await checkpointDir("tiny_gqa"), {
    gpu: await Gpu.acquire({ quiet: true }),
  });
  assert.equal((await fresh.forward(ids([1, 2])).read()).shape.join(), "1,2,320");
});

Deno.test("a GPU allocation failure at load time says how much memory the model needs and what to try", async () => {
  const own = await Gpu.acquire({ quiet: true });
  const device = own.device;
  const real = device.createBuffer.bind(device);
  let allocated = 0;
  // Pretend the adapter has 1 MiB: tiny_gqa's weights need 1.6 MiB.
  Object.defineProperty(device, "createBuffer", {
    configurable: true,
    value: (desc: GPUBufferDescriptor) => {
      if (desc.usage & GPUBufferUsage.STORAGE) {
        allocated += desc.size;
        if (allocated > 1024 * 1024) throw new DOMException("Not enough memory left", "OperationError");
      }
      return real(desc);
    },
  });
  try {
    await assert.rejects(loadDecoder(await checkpointDir("tiny_gqa"), { gpu: own }), (e: Error) => {
      assert.match(
        e.message,
        /not enough GPU memory: the model's weights need 1\.\d MiB and allocation failed after/,
      );
      assert.match(e.message, /--dtype q8 or q4/);
      return true;
    });
  } finally {
    own.destroy();
  }
});
