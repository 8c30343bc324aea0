/** @module torchtune `TransformerDecoder`. */
import { BufferOwner, ScratchPool } from "../gpu/buffers.ts";
import { getGpu, type Gpu } from "../gpu/device.ts";
import { hostSources, type LoadProgress, uploadParameters } from "../checkpoint/upload.ts";
import { type Recorder, submitRecording } from "../gpu/ops.ts";
import { DeviceTensor, type HostTensor } from "../gpu/tensor.ts";
import {
  checkEncoderInput,
  checkTokens,
  type DecoderForwardOptions,
  expandPositions,
  packMask,
} from "./decoder_inputs.ts";
import { KVCache } from "./kv_cache.ts";
import type { Linear } from "./linear.ts";
import { type FusionEmbedding, FusionLayer } from "./model_fusion.ts";
import { Module, type Parameter } from "./module.ts";
import type { Llama3ScaledRoPE } from "./position_embeddings.ts";
import { normInput, type RMSNorm } from "./rms_norm.ts";
import type {
  LayerCall,
  TransformerCrossAttentionLayer,
  TransformerSelfAttentionLayer,
} from "./transformer.ts";

/** Token ids already on the GPU: an i32 buffer holding `[b, s]` ids in range. */
export interface GpuTokens {
  /** i32 ids, row-major `[b, s]`. */
  buffer: GPUBuffer;
  /** `[b, s]`. */
  shape: [number, number];
}

/** Cache lengths for {@link TransformerDecoder.setup_caches}; each defaults to the decoder's `max_seq_len`. */
export interface SetupCachesOptions {
  /** Slots of each cross-attention cache (torchtune `encoder_max_seq_len`). */
  encoder_max_seq_len?: number | null;
  /** Slots of each self-attention cache (torchtune `decoder_max_seq_len`). */
  decoder_max_seq_len?: number | null;
}

/**
 * Mirrors torchtune `modules.TransformerDecoder`: token embeddings, `layers` (self-attention layers,
 * some wrapped in {@link FusionLayer}s), a final `norm` and the `output` projection. Weights live on
 * the GPU once loaded (`loadCheckpoint` or {@link TransformerDecoder.load_state_dict}).
 */
export class TransformerDecoder extends Module {
  /** torchtune `tok_embeddings`: token ids `[b, s]` → embeddings `[b, s, E]`. */
  readonly tok_embeddings: FusionEmbedding;
  /** torchtune `layers`: `num_layers` self-attention layers, some wrapped in {@link FusionLayer}s. */
  readonly layers: (TransformerSelfAttentionLayer | FusionLayer)[];
  /** torchtune `norm`: the final RMSNorm over `E`. */
  readonly norm: RMSNorm;
  /** torchtune `output`: the projection to logits, weight `[vocab_size, E]`. */
  readonly output: Linear;
  /** torchtune `max_seq_len`: the longest sequence `forward` accepts and the RoPE table length. */
  readonly max_seq_len: number;
  /** torchtune `num_heads` (query heads). */
  readonly num_heads: number;
  /** torchtune `head_dim` (`embed_dim / num_heads`). */
  readonly head_dim: number;
  /** The RoPE module shared by every self-attention layer. */
  readonly rope: Llama3ScaledRoPE;
  #gpu: Gpu | null = null;
  #owner: BufferOwner | null = null;
  #scratch: ScratchPool | null = null;
  #caches: KVCache[] = [];

  /** Same arguments as torchtune's constructor. */
  constructor(opts: {
    tok_embeddings: FusionEmbedding;
    layers: (TransformerSelfAttentionLayer | FusionLayer)[];
    max_seq_len: number;
    num_heads: number;
    head_dim: number;
    norm: RMSNorm;
    output: Linear;
    rope: Llama3ScaledRoPE;
  }) {
    super();
    this.tok_embeddings = opts.tok_embeddings;
    this.layers = opts.layers;
    this.max_seq_len = opts.max_seq_len;
    this.num_heads = opts.num_heads;
    this.head_dim = opts.head_dim;
    this.norm = opts.norm;
    this.output = opts.output;
    this.rope = opts.rope;
  }

  /** Every parameter by torchtune state-dict name (`tok_embeddings.weight`, `layers.0.attn.q_proj.weight`…). */
  override named_parameters(prefix = ""): [string, Parameter][] {
    const out = this.tok_embeddings.named_parameters(`${prefix}tok_embeddings.`);
    this.layers.forEach((layer, i) => out.push(...layer.named_parameters(`${prefix}layers.${i}.`)));
    out.push(
      ...this.norm.named_parameters(`${prefix}norm.`),
      ...this.output.named_parameters(`${prefix}output.`),
    );
    return out;
  }

  /** The decoder itself, so that code can treat a decoder and a fusion model (`model.decoder`) alike. */
  get decoder(): TransformerDecoder {
    return this;
  }

  /** The device the weights live on (set by the loader). */
  get gpu(): Gpu {
    if (!this.#gpu) {
      throw new Error(
        "the model has no weights yet: build it with `await loadCheckpoint(dir)` or call `await model.load_state_dict(...)`",
      );
    }
    return this.#gpu;
  }

  /**
   * torchtune-style `load_state_dict`: uploads f32 host tensors keyed by torchtune state-dict names
   * (`tok_embeddings.weight`, `layers.0.attn.q_proj.weight`, …). Every parameter must be present, with
   * its exact shape; unknown names are errors.
   */
  async load_state_dict(
    state_dict:
      | Map<string, { data: Float32Array; shape: number[] }>
      | Record<string, { data: Float32Array; shape: number[] }>,
    options: { gpu?: Gpu; onProgress?: LoadProgress } = {},
  ): Promise<void> {
    await uploadParameters(this, hostSources(state_dict), options.gpu ?? await getGpu(), options.onProgress);
  }

  /** Binds the model to a device and returns the owner its weights are allocated on (used by loaders). */
  attach(gpu: Gpu): BufferOwner {
    if (this.#owner && this.#gpu === gpu) return this.#owner;
    this.destroy();
    this.#gpu = gpu;
    this.#owner = new BufferOwner(gpu);
    this.#scratch = new ScratchPool(gpu);
    this.rope.upload(this.#owner);
    return this.#owner;
  }

  /** Scratch buffers reused by every forward pass of this model (null before loading). */
  get scratch_pool(): ScratchPool | null {
    return this.#scratch;
  }

  /** Bytes of GPU memory held by weights and caches. */
  get gpu_bytes(): number {
    return (this.#owner?.bytes ?? 0) + this.#caches.reduce((a, c) => a + 2 * c.k_cache.size, 0);
  }

  #selfAttentionLayers(): TransformerSelfAttentionLayer[] {
    return this.layers.map((l) => l instanceof FusionLayer ? l.layer : l);
  }

  #crossAttentionLayers(): TransformerCrossAttentionLayer[] {
    return this.layers.flatMap((l) => l instanceof FusionLayer ? [l.fusion_layer] : []);
  }

  /**
   * torchtune `setup_caches(batch_size, dtype, encoder_max_seq_len, decoder_max_seq_len)`: KV caches of
   * `decoder_max_seq_len` slots in every self-attention layer and `encoder_max_seq_len` slots in every
   * cross-attention layer (each defaulting to `max_seq_len`). A second call is a no-op with a warning.
   * Caches are float32; torchtune's `dtype` argument may be passed as a string before the options
   * (`setup_caches(1, "float32", { ... })`) and is otherwise ignored.
   */
  setup_caches(
    batch_size: number,
    options: SetupCachesOptions | string = {},
    maybeOptions: SetupCachesOptions = {},
  ): void {
    const opts = typeof options === "string" ? maybeOptions : options;
    if (this.caches_are_setup()) {
      console.warn("Key value caches are already setup. You cannot call ``setup_caches()`` twice. Skipping.");
      return;
    }
    const check = (name: string, v: number) => {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
    };
    check("batch_size", batch_size);
    const decLen = opts.decoder_max_seq_len ?? this.max_seq_len;
    const encLen = opts.encoder_max_seq_len ?? this.max_seq_len;
    check("decoder_max_seq_len", decLen);
    check("encoder_max_seq_len", encLen);
    const gpu = this.gpu;
    try {
      for (const layer of this.#selfAttentionLayers()) {
        const a = layer.attn;
        a.kv_cache = new KVCache(gpu, batch_size, decLen, a.num_kv_heads, a.head_dim);
        this.#caches.push(a.kv_cache);
      }
      for (const layer of this.#crossAttentionLayers()) {
        const a = layer.attn;
        a.kv_cache = new KVCache(gpu, batch_size, encLen, a.num_kv_heads, a.head_dim);
        this.#caches.push(a.kv_cache);
      }
    } catch (e) {
      this.#dropCaches();
      throw e;
    }
  }

  /**
   * Makes caches fit a generation: resets them when they already hold `batch_size` rows and at least
   * the requested lengths, else rebuilds them at exactly these lengths. (Not in torchtune, whose
   * recipes call `setup_caches` once.)
   */
  prepare_caches(
    batch_size: number,
    opts: { decoder_max_seq_len: number; encoder_max_seq_len?: number | null },
  ): void {
    const self = this.#selfAttentionLayers()[0]?.attn.kv_cache;
    const cross = this.#crossAttentionLayers()[0]?.attn.kv_cache;
    const fits = self && self.batch_size === batch_size && self.max_seq_len >= opts.decoder_max_seq_len &&
      (!cross || opts.encoder_max_seq_len == null || cross.max_seq_len >= opts.encoder_max_seq_len);
    if (fits) {
      this.reset_caches();
      return;
    }
    this.delete_caches();
    this.setup_caches(batch_size, {
      decoder_max_seq_len: opts.decoder_max_seq_len,
      // Without an image the cross-attention caches stay empty: keep them minimal.
      encoder_max_seq_len: opts.encoder_max_seq_len ?? 1,
    });
  }

  /** Frees the caches and turns caching off (not in torchtune; `setup_caches` may be called again). */
  delete_caches(): void {
    this.#dropCaches();
  }

  /** Whether caches were set up (torchtune `caches_are_setup`). */
  caches_are_setup(): boolean {
    return this.#caches.length > 0;
  }

  /** Whether forward calls read and write the caches (torchtune `caches_are_enabled`). */
  caches_are_enabled(): boolean {
    return this.#caches.length > 0;
  }

  /** Slots of the self-attention caches (torchtune `decoder_max_cache_seq_len`), or null without caches. */
  get decoder_max_cache_seq_len(): number | null {
    return this.#selfAttentionLayers()[0]?.attn.kv_cache?.max_seq_len ?? null;
  }

  /** Zeroes every cache and rewinds its write position (torchtune `reset_caches`). */
  reset_caches(): void {
    if (!this.caches_are_enabled()) {
      throw new Error("Key value caches are not setup. Call ``setup_caches()`` first.");
    }
    for (const c of this.#caches) c.reset();
  }

  #dropCaches(): void {
    for (const c of this.#caches) c.destroy();
    this.#caches = [];
    for (const l of this.#selfAttentionLayers()) l.attn.kv_cache = null;
    for (const l of this.#crossAttentionLayers()) l.attn.kv_cache = null;
  }

  /**
   * torchtune `TransformerDecoder.forward(tokens, mask=, encoder_input=, encoder_mask=, input_pos=)`.
   *
   * @param tokens token ids `[b, s]` (Int32Array), ids ≥ `vocab_size` select fusion embeddings
   * @returns float32 logits `[b, s, vocab_size]` on the GPU; `await t.read()` copies them back
   */
  forward(
    tokens: HostTensor<Int32Array | ArrayLike<number>>,
    opts: DecoderForwardOptions = {},
  ): DeviceTensor {
    const gpu = this.gpu;
    const { logits, shape } = submitRecording(
      gpu,
      this.scratch_pool,
      (rec) => this.record(rec, tokens, opts),
    );
    return new DeviceTensor(gpu, logits, shape, "f32");
  }

  /**
   * Records a forward pass into `rec` without submitting it, for generation loops that keep
   * everything on the GPU: `tokens` may be a GPU buffer of i32 ids `[b, s]` (for example the
   * previous step's sampled tokens, trusted to be in range), and `last_position_only` computes the
   * logits of each row's last position only (`[b, 1, vocab_size]`). Checks the inputs exactly like
   * {@link TransformerDecoder.forward}. The returned buffer is owned by the caller.
   */
  record(
    rec: Recorder,
    tokens: HostTensor<Int32Array | ArrayLike<number>> | GpuTokens,
    opts: DecoderForwardOptions = {},
    options: { last_position_only?: boolean } = {},
  ): { logits: GPUBuffer; shape: number[] } {
    const emb = this.tok_embeddings;
    let batch: number, seq: number, ids: Int32Array | null = null;
    if ("buffer" in tokens) {
      [batch, seq] = tokens.shape;
    } else {
      ({ batch, seq, ids } = checkTokens(tokens, emb.vocab_size + emb.fusion_vocab_size));
    }
    if (seq > this.max_seq_len) {
      throw new RangeError(`sequence length ${seq} exceeds the model's max_seq_len ${this.max_seq_len}`);
    }
    const selfLayers = this.#selfAttentionLayers();
    const crossLayers = this.#crossAttentionLayers();
    const cached = this.caches_are_enabled();
    if (cached) {
      if (!opts.mask) {
        throw new Error(
          "KV-caches for self-attention layers are setup for inference mode, causal masks must be provided! " +
            "Use the `mask` arg to provide a causal mask.",
        );
      }
      if (opts.encoder_input && !opts.encoder_mask) {
        throw new Error(
          "KV-caches for cross-attention/fusion layers are setup for inference mode and you seem to be using " +
            "encoder_input, causal masks must be provided! Use the `encoder_mask` arg to provide a causal mask.",
        );
      }
      if (!opts.input_pos) {
        throw new Error("KV-caches are setup for inference mode, input positions must be provided!");
      }
      const cache = selfLayers[0].attn.kv_cache!;
      if (batch !== cache.batch_size) {
        throw new RangeError(
          `tokens have batch ${batch} but the caches were set up for batch ${cache.batch_size}`,
        );
      }
      if (cache.size + seq > cache.max_seq_len) {
        throw new RangeError(
          `the KV cache holds ${cache.max_seq_len} positions, ${cache.size} are used and ${seq} more do not fit; ` +
            "call reset_caches() or setup_caches with a larger decoder_max_seq_len",
        );
      }
    }
    const positions = expandPositions(opts.input_pos, batch, seq, this.max_seq_len);
    const selfKeyLen = cached ? selfLayers[0].attn.kv_cache!.max_seq_len : seq;
    const selfMask = opts.mask ? packMask("mask", opts.mask, batch, seq, selfKeyLen) : null;

    let encSeq = 0;
    if (opts.encoder_input && "images" in opts.encoder_input) {
      throw new TypeError(
        "this is a decoder without a vision encoder: pass encoder_input as the encoder output [b, S, embed_dim], " +
          "or load a checkpoint with vision weights (loadCheckpoint returns a DeepFusionModel for it)",
      );
    }
    const encoderInput = opts.encoder_input ?? null;
    if (encoderInput) {
      encSeq = checkEncoderInput(encoderInput, batch, emb.embed_dim);
      const cache = crossLayers[0]?.attn.kv_cache;
      if (cache && cache.size + encSeq > cache.max_seq_len) {
        throw new RangeError(
          `encoder_input has ${encSeq} positions but the cross-attention cache holds ${
            cache.max_seq_len - cache.size
          } more; setup_caches with encoder_max_seq_len ≥ the encoder length, or reset_caches()`,
        );
      }
    }
    const crossCache = crossLayers[0]?.attn.kv_cache;
    const crossActive = crossLayers.length > 0 && (encoderInput != null || (crossCache?.size ?? 0) > 0);
    let encMask = null;
    if (opts.encoder_mask && crossActive) {
      const width = crossCache ? crossCache.max_seq_len : encSeq;
      encMask = packMask("encoder_mask", opts.encoder_mask, batch, seq, width);
    }

    const T = batch * seq;
    const E = emb.embed_dim;
    const tokenBuf = "buffer" in tokens ? tokens.buffer : rec.temps.upload(ids!, "tokens");
    const call: LayerCall = {
      rec,
      batch,
      seq,
      positions: rec.temps.upload(positions, "input_pos"),
      mask: selfMask
        ? {
          kind: "bits",
          bits: rec.temps.upload(selfMask.bits, "mask"),
          words: selfMask.words,
          used: selfMask.used,
        }
        : { kind: "causal" },
      encoder: encoderInput
        ? {
          buffer: "buffer" in encoderInput
            ? encoderInput.buffer
            : rec.temps.upload(encoderInput.data, "encoder_input"),
          seq: encSeq,
        }
        : null,
      // An all-True mask changes nothing: attend unmasked, which lets long prefills use the matmul path.
      encoder_mask: encMask && !encMask.full
        ? {
          kind: "bits",
          bits: rec.temps.upload(encMask.bits, "encoder_mask"),
          words: encMask.words,
          used: encMask.used,
        }
        : { kind: "none" },
      skip: encMask && !encMask.full ? rec.temps.upload(encMask.empty, "skip rows") : null,
    };
    let h = rec.scratch(T * E * 4, "hidden");
    emb.forward(rec, tokenBuf, T, h);
    for (const layer of this.layers) layer.forward(call, h);
    let rows = T;
    if (options.last_position_only && seq > 1) {
      // Only the last position of each row feeds the output projection (generation needs no more).
      const last = rec.scratch(batch * E * 4, "last hidden");
      for (let b = 0; b < batch; b++) rec.copy(h, ((b + 1) * seq - 1) * E * 4, last, b * E * 4, E * 4);
      h = last;
      rows = batch;
    }
    // The final norm folds into the output projection where that quantizes its input (quantized decoding).
    const input = normInput(rec, this.norm, h, rows, this.output.weight.storage);
    const V = this.output.out_dim;
    const logits = rec.output(rows * V * 4, "logits");
    this.output.forward(rec, input.x, rows, logits, false, { rmsNorm: input.fold });
    return { logits, shape: [batch, rows === T ? seq : 1, V] };
  }

  /** Frees the GPU memory of weights and caches. The model needs loading again afterwards. */
  destroy(): void {
    this.#dropCaches();
    this.#owner?.destroy();
    this.#owner = null;
    this.#scratch?.destroy();
    this.#scratch = null;
    this.#gpu = null;
  }

  /** `using model = await loadCheckpoint(dir)` frees it at the end of the scope. */
  [Symbol.dispose](): void {
    this.destroy();
  }
}
