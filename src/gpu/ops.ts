/**
 * One function per kernel: checks sizes, splits work that would exceed a storage binding, and
 * encodes the dispatches into a {@link Recorder} (one command buffer, one compute pass per forward).
 *
 * Activations are f32 buffers laid out row-major by token (`[T, width]`); the functions take the
 * buffer plus the sizes and bind windows of it, so a tensor larger than one binding is processed
 * in token ranges. Weights are {@link WeightStorage}s split by rows.
 *
 * @module
 */
import { type Gpu, GpuError } from "./device.ts";
import {
  bindWindow,
  type BoundWindow,
  BufferOwner,
  QUANT_GROUP,
  quantRowMultiple,
  type ScratchPool,
  type WeightChunk,
  type WeightDtype,
  type WeightStorage,
} from "./buffers.ts";
import { bindGroupsOf } from "./bind_groups.ts";
import { pipelinesOf } from "./pipelines.ts";
import type { KernelName } from "../../kernels/sources.ts";

const WORKGROUP = 64;

/** Below this many tokens `linear` uses matvec.wgsl (one token per invocation) instead of 4×4 tiles. */
const MATVEC_MAX_TOKENS = 4;

/** Bytes of one uniform arena (256 dispatches at a 256-byte offset alignment). */
const UNIFORM_ARENA_BYTES = 64 * 1024;

/** Records the dispatches of one forward pass and submits them as one command buffer. */
export class Recorder {
  /** The device the work is recorded for. */
  readonly gpu: Gpu;
  /** Buffers that live until the work is submitted (uniforms, scratch). */
  readonly temps: BufferOwner;
  #encoder: GPUCommandEncoder;
  #pass: GPUComputePassEncoder;
  #dummy: GPUBuffer | null = null;
  #pool = new Map<string, GPUBuffer>();
  #scratchPool: ScratchPool | null;
  /** Uniform parameters of this recording, packed into a few arenas written once at submission. */
  #arenas: { buffer: GPUBuffer; data: Uint8Array<ArrayBuffer>; used: number }[] = [];

  /** Starts recording on `gpu`; scratch buffers come from `pool` (kept across recordings) when given. */
  constructor(gpu: Gpu, pool: ScratchPool | null = null) {
    gpu.assertAlive();
    this.gpu = gpu;
    this.#scratchPool = pool;
    this.temps = new BufferOwner(gpu);
    this.#encoder = gpu.device.createCommandEncoder();
    this.#pass = this.#encoder.beginComputePass();
  }

  /**
   * A scratch buffer for one role (`label`) and size, freed after submission. Every call asking for the
   * same role and size gets the same buffer: dispatches run in order, so all layers share one
   * workspace instead of each holding its own until the forward pass ends.
   */
  scratch(bytes: number, label: string): GPUBuffer {
    if (this.#scratchPool) return this.#scratchPool.get(bytes, label);
    const key = `${label}:${bytes}`;
    let buffer = this.#pool.get(key);
    if (!buffer) this.#pool.set(key, buffer = this.temps.storage(bytes, label));
    return buffer;
  }

  /** A buffer that outlives the recording (e.g. the logits); the caller owns and destroys it. */
  output(bytes: number, label: string): GPUBuffer {
    const buffer = this.temps.storage(bytes, label);
    this.temps.release(buffer);
    return buffer;
  }

  /** A small buffer for bindings a dispatch does not use. */
  get dummy(): GPUBuffer {
    return this.#dummy ??= this.scratch(16, "unused binding");
  }

  /**
   * Small buffers for writable bindings a dispatch does not use (one buffer may not be bound both
   * read-only and writable in one dispatch, so these are not {@link Recorder.dummy}).
   */
  dummyOutput(i: number): GPUBuffer {
    return this.scratch(16, `unused output binding ${i}`);
  }

  /**
   * Dispatches `kernel` (with the weight snippet for `weight`, if any). `resources` are bound to
   * bindings 0…n−1 in order and `params` (packed by {@link pack}) to binding n as a uniform.
   * Used by the kernel wrappers in `src/gpu/ops.ts` only.
   *
   * @ignore
   */
  dispatch(
    kernel: KernelName,
    weight: WeightDtype | undefined,
    resources: (GPUBuffer | GPUBufferBinding)[],
    params: ArrayBuffer,
    groups: [number, number, number],
  ): void {
    const pipelines = pipelinesOf(this.gpu);
    const pipeline = pipelines.get(kernel, weight);
    const layout = pipelines.layout(pipeline);
    // A dispatch recorded before with the same buffers and parameters (a decode step's) reuses its bind
    // group; others bind their parameters from this recording's arena.
    const bindGroup = bindGroupsOf(this.gpu).bind(
      pipeline,
      layout,
      resources,
      params,
      (p) => this.#uniform(p),
    );
    this.#pass.setPipeline(pipeline);
    this.#pass.setBindGroup(0, bindGroup);
    this.#pass.dispatchWorkgroups(...groups);
  }

  /**
   * A binding for one dispatch's parameters inside a uniform arena: one buffer serves hundreds of
   * dispatches instead of one buffer each (creating buffers costs more than the dispatch on CPU adapters).
   */
  #uniform(params: ArrayBuffer): GPUBufferBinding {
    const align = this.gpu.limits.uniformOffsetAlignment;
    const size = Math.max(16, Math.ceil(params.byteLength / 16) * 16);
    let arena = this.#arenas[this.#arenas.length - 1];
    if (!arena || arena.used + size > arena.data.byteLength) {
      const bytes = Math.max(UNIFORM_ARENA_BYTES, size);
      arena = {
        buffer: this.temps.uniform(new ArrayBuffer(bytes), "uniforms"),
        data: new Uint8Array(bytes),
        used: 0,
      };
      this.#arenas.push(arena);
    }
    arena.data.set(new Uint8Array(params), arena.used);
    const binding = { buffer: arena.buffer, offset: arena.used, size };
    arena.used += Math.ceil(size / align) * align;
    return binding;
  }

  /** Copies bytes between buffers (a copy cannot sit inside a compute pass: the pass is split around it). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.#pass.end();
    this.#encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    this.#pass = this.#encoder.beginComputePass();
  }

  /** Ends recording and submits; scratch buffers are released (the device keeps them until done). */
  submit(): void {
    for (const a of this.#arenas) this.gpu.device.queue.writeBuffer(a.buffer, 0, a.data, 0, a.used);
    this.#pass.end();
    this.gpu.device.queue.submit([this.#encoder.finish()]);
    this.temps.destroy();
    this.#scratchPool?.trim();
  }
}

/**
 * Records `fn` into a new {@link Recorder} inside the device's error scopes, without submitting it (the
 * generation loop records a step ahead); on failure the recording's temporaries are freed.
 */
export function startRecording<T>(
  gpu: Gpu,
  pool: ScratchPool | null,
  fn: (rec: Recorder) => T,
): { rec: Recorder; result: T } {
  return gpu.scoped(() => {
    const rec = new Recorder(gpu, pool);
    try {
      return { rec, result: fn(rec) };
    } catch (e) {
      rec.temps.destroy();
      throw e;
    }
  });
}

/**
 * Records `fn` into a new {@link Recorder} inside the device's error scopes and submits it; on failure
 * nothing is submitted and the recording's temporaries are freed.
 */
export function submitRecording<T>(gpu: Gpu, pool: ScratchPool | null, fn: (rec: Recorder) => T): T {
  const { rec, result } = startRecording(gpu, pool, fn);
  try {
    gpu.scoped(() => rec.submit());
  } catch (e) {
    rec.temps.destroy();
    throw e;
  }
  return result;
}

/** Packs uniform fields; `types` has one letter per value: `u` for u32, `f` for f32. */
export function pack(types: string, values: number[]): ArrayBuffer {
  const buf = new ArrayBuffer(Math.ceil(values.length / 4) * 16);
  const view = new DataView(buf);
  values.forEach((v, i) => {
    if (types[i] === "f") view.setFloat32(i * 4, v, true);
    else view.setUint32(i * 4, v, true);
  });
  return buf;
}

/** Workgroup counts covering `invocations` with 64 per workgroup, folded into x·y. */
export function grid(gpu: Gpu, invocations: number): [number, number, number] {
  const groups = Math.max(1, Math.ceil(invocations / WORKGROUP));
  const x = Math.min(groups, gpu.limits.maxWorkgroupsPerDimension);
  return [x, Math.ceil(groups / x), 1];
}

/**
 * Rows per workgroup of the row kernels (rms_norm.wgsl, layer_norm.wgsl, softmax_rows.wgsl): one per
 * subgroup of the largest size where they reduce within a subgroup (rows_subgroup.wgsl), 64 / that
 * size (where subgroups come smaller, the extra ones idle). 1 where the device has no subgroups or they
 * can be 64 wide: those devices take the kernels that reduce over a workgroup per row instead.
 */
export function rowsPerWorkgroup(gpu: Gpu): number {
  const sg = gpu.subgroupSizes;
  return sg && sg.max <= WORKGROUP ? WORKGROUP / sg.max : 1;
}

/** Workgroup counts for one workgroup per item, folded into x·y. */
export function gridPerItem(gpu: Gpu, items: number): [number, number, number] {
  const x = Math.max(1, Math.min(items, gpu.limits.maxWorkgroupsPerDimension));
  return [x, Math.ceil(items / x), 1];
}

/**
 * Splits `count` items into ranges whose every binding fits: `bytesPerItem` lists, per bound
 * activation, the bytes one item (token, row) takes. `cap` bounds items per range.
 */
export function* ranges(
  gpu: Gpu,
  count: number,
  bytesPerItem: number[],
  cap = Infinity,
): Generator<[number, number]> {
  const room = gpu.limits.maxBindingBytes - gpu.limits.storageOffsetAlignment;
  const per = Math.min(cap, Math.floor(room / Math.max(4, ...bytesPerItem)));
  if (per < 1) {
    throw new GpuError(`internal: one item of ${Math.max(...bytesPerItem)} bytes exceeds a binding`);
  }
  for (let start = 0; start < count; start += per) yield [start, Math.min(per, count - start)];
}

/**
 * FusionEmbedding gather (embedding.wgsl): `out[t] = table[tokens[t] - rowBase]` for every token that
 * falls in the table, table chunk by chunk. `tokens` is i32 `[T]`, `out` f32 `[T, dim]`.
 */
export function embedding(
  rec: Recorder,
  table: WeightStorage,
  rowBase: number,
  tokens: GPUBuffer,
  nTokens: number,
  out: GPUBuffer,
): void {
  const dim = table.cols;
  if (table.chunks.some((c) => c.bufferRow !== 0)) throw new GpuError("internal: an embedding table slice");
  for (const chunk of table.chunks) {
    for (const [t0, n] of ranges(rec.gpu, nTokens, [dim * 4])) {
      const o = bindWindow(rec.gpu, out, t0 * dim * 4, n * dim * 4);
      const tk = bindWindow(rec.gpu, tokens, t0 * 4, n * 4);
      rec.dispatch(
        "embedding",
        table.dtype,
        [chunk.buffer, tk.resource, o.resource],
        pack("uuuuuu", [n, dim, rowBase + chunk.rowStart, chunk.rowCount, o.elementOffset, tk.elementOffset]),
        grid(rec.gpu, n * dim),
      );
    }
  }
}

/**
 * `out[M, N] = x[M, K] · Wᵀ (+ bias)` (linear.wgsl, matvec.wgsl, or matmul.wgsl / matmul_subgroup.wgsl:
 * {@link matmulTile}) for a weight `[N, K]`,
 * chunk by chunk; `bias` is f32 `[N]`. With `accumulate` the result is added to `out` instead. With
 * `options.swigluUp` the product is of silu(x) ⊙ swigluUp (`x` then holds that afterwards, unless the
 * product folded it: quantized decoding); with `options.rmsNorm` (only where
 * {@link quantizesActivations}) of RMSNorm(x).
 */
export function linear(
  rec: Recorder,
  weight: WeightStorage,
  x: GPUBuffer,
  M: number,
  out: GPUBuffer,
  bias: GPUBuffer | null = null,
  accumulate = false,
  options: { swigluUp?: GPUBuffer; rmsNorm?: FoldedRmsNorm } = {},
): void {
  const K = weight.cols;
  const N = weight.rows;
  const rmsNorm = options.rmsNorm;
  // int8 activations for quantized weights when decoding. Decided on M, not on each range's tokens, so
  // that results do not depend on the binding limits.
  const int8 = quantizesActivations(rec.gpu, weight, M);
  if (rmsNorm && !int8) {
    throw new GpuError("internal: RMSNorm folded into a product that does not quantize its input");
  }
  // SwiGLU folds into the int8 prologue of quantized decoding; any other product gets it as a pass of
  // its own first. (Folded into matmul_subgroup.wgsl's activation loads it cost more than that pass on
  // llvmpipe: each subgroup of a workgroup computes the same tokens' gates again.)
  let up = options.swigluUp ?? null;
  if (up && !int8) {
    swiglu(rec, x, up, M * K);
    up = null;
  }
  for (const chunk of weight.chunks) {
    for (
      const [m0, mc] of ranges(rec.gpu, M, [K * 4, N * 4], 4 * rec.gpu.limits.maxWorkgroupsPerDimension)
    ) {
      const xw = bindWindow(rec.gpu, x, m0 * K * 4, mc * K * 4);
      const ow = bindWindow(rec.gpu, out, m0 * N * 4, mc * N * 4);
      // Rows of a multiple of 8 with aligned activations take the vec4 kernels: matrix-vector for a few
      // tokens (decoding: each weight row streamed once per token), register tiles for more (matmulTile).
      const fast = K % 8 === 0 && xw.elementOffset % 4 === 0;
      const kernel = !fast ? "linear" : mc < MATVEC_MAX_TOKENS ? "matvec" : "matmul";
      if (kernel === "matvec") {
        const xr = { resource: xw.resource, offset: xw.elementOffset };
        const or = { resource: ow.resource, offset: ow.elementOffset, stride: N };
        const uw = up ? bindWindow(rec.gpu, up, m0 * K * 4, mc * K * 4) : null;
        const swigluUp = uw ? { resource: uw.resource, offset: uw.elementOffset } : undefined;
        matvecChunk(rec, weight.dtype, chunk, K, xr, mc, or, { bias, accumulate, int8, swigluUp, rmsNorm });
        continue;
      }
      const params = [
        mc,
        K,
        chunk.rowCount,
        N,
        chunk.rowStart,
        xw.elementOffset,
        ow.elementOffset,
        bias ? 1 : 0,
        accumulate ? 1 : 0,
        chunk.bufferRow,
      ];
      if (kernel === "linear") {
        rec.dispatch(
          kernel,
          weight.dtype,
          [chunk.buffer, xw.resource, ow.resource, bias ?? rec.dummy],
          pack("uuuuuuuuuu", params),
          [Math.ceil(chunk.rowCount / 4 / WORKGROUP), Math.ceil(mc / 4), 1],
        );
        continue;
      }
      const tile = matmulTile(rec.gpu, chunk.rowCount);
      rec.dispatch(
        tile.kernel,
        weight.dtype,
        [chunk.buffer, xw.resource, ow.resource, bias ?? rec.dummy],
        // One batch: x rows K apart (see matmulHeads for the batched form).
        pack("uuuuuuuuuuuuuuuuu", [...params, K, 0, 0, 0, 1, 0, tile.lanesX]),
        matmulGrid(tile, chunk.rowCount, mc, 1),
      );
    }
  }
}

/**
 * A register-tiled matrix multiplication: its kernel, the weight rows and tokens each invocation
 * computes, and its invocations along the rows of a workgroup (`lanes_x`; the rest go along the tokens).
 */
interface MatmulTile {
  kernel: "matmul" | "matmul_subgroup";
  rows: number;
  tokens: number;
  lanesX: number;
}

/**
 * The fewest tokens a matmul workgroup covers (matmul.wgsl's 8 with all 64 lanes along the rows;
 * matmul_subgroup.wgsl covers 16 or more), which bounds the tokens of one dispatch (grid y).
 */
const MATMUL_MIN_WORKGROUP_TOKENS = 8;

/**
 * The tile for a product with `rows` weight rows: matmul_subgroup.wgsl (8 rows × 16 tokens) where the
 * device has subgroups of 8 to 64 invocations, else matmul.wgsl (16 rows × 8 tokens). `lanesX` is a
 * power of two covering the rows, at most 64, and for the subgroup kernel at least the largest
 * subgroup (the lanes of a subgroup share their tokens).
 */
function matmulTile(gpu: Gpu, rows: number): MatmulTile {
  const sg = gpu.subgroupSizes;
  const subgroup = sg !== null && sg.min >= 8 && sg.max <= WORKGROUP;
  const tile = subgroup
    ? { kernel: "matmul_subgroup" as const, rows: 8, tokens: 16, lanesX: sg.max }
    : { kernel: "matmul" as const, rows: 16, tokens: 8, lanesX: 1 };
  while (tile.lanesX < WORKGROUP && tile.lanesX * tile.rows < rows) tile.lanesX *= 2;
  return tile;
}

/** The grid of `tile` for `rows` weight rows, `M` tokens and `batches` batches. */
function matmulGrid(tile: MatmulTile, rows: number, M: number, batches: number): [number, number, number] {
  return [
    Math.ceil(rows / tile.rows / tile.lanesX),
    Math.ceil(M / tile.tokens / (WORKGROUP / tile.lanesX)),
    batches,
  ];
}

/**
 * The matrix-vector kernel for float weights: matvec_subgroup.wgsl where the device has subgroups of 4
 * or more invocations (its lanes share the activations), else matvec.wgsl.
 */
function matvecKernel(gpu: Gpu): "matvec" | "matvec_subgroup" {
  const sg = gpu.subgroupSizes;
  return sg !== null && sg.min >= 4 ? "matvec_subgroup" : "matvec";
}

/** Weight rows per invocation of matvec.wgsl. */
const MATVEC_ROWS = 8;

/** A split point of matvec.wgsl past any row: no split. */
const NO_SPLIT = 0xffffffff;

/**
 * Whether {@link linearSplit} can compute a product of `weight` for `M` tokens of `x` in one dispatch
 * per chunk (matvec.wgsl: few tokens, rows a multiple of 8 long, whole buffers as activations).
 */
export function canLinearSplit(weight: WeightStorage, M: number): boolean {
  return M < MATVEC_MAX_TOKENS && weight.cols % 8 === 0;
}

/** An RMSNorm (torchtune `RMSNorm`) folded into the products that follow it: its scale f32 `[dim]` and eps. */
export interface FoldedRmsNorm {
  /** The scale, f32 `[dim]`. */
  scale: GPUBuffer;
  /** Added to the mean square. */
  eps: number;
}

/**
 * Whether products over `weight` for `M` tokens quantize their activations themselves (the int8
 * activations of quantized decoding, matvec_q8.wgsl / matvec_q4.wgsl), and so can take what comes
 * before them into that step: SwiGLU ({@link linear}'s `swigluUp`) and RMSNorm (`rmsNorm` of
 * {@link linear} and {@link linearSplit}).
 */
export function quantizesActivations(gpu: Gpu, weight: WeightStorage, M: number): boolean {
  return usesInt8Activations(gpu, weight) && M < MATVEC_MAX_TOKENS;
}

/**
 * `x[M, K] · Wᵀ` for a weight whose rows are the stacked weights of several projections of the same input
 * (q, k and v; w1 and w3), each written to its own buffer: `outs[i]` `[M, rows[i]]` gets rows
 * `Σ rows[..i] …` of the product. Two or three outputs; needs {@link canLinearSplit}.
 */
export function linearSplit(
  rec: Recorder,
  weight: WeightStorage,
  x: GPUBuffer,
  M: number,
  outs: { buffer: GPUBuffer; rows: number }[],
  rmsNorm?: FoldedRmsNorm,
): void {
  if (!canLinearSplit(weight, M) || outs.length < 2 || outs.length > 3) {
    throw new GpuError("internal: linearSplit needs a matvec-sized product and 2 or 3 outputs");
  }
  if (outs.reduce((a, o) => a + o.rows, 0) !== weight.rows) {
    throw new GpuError("internal: linearSplit outputs do not add up to the weight's rows");
  }
  const [a, ...rest] = outs;
  let start = a.rows;
  const split = rest.map((o) => {
    const part = { start, buffer: o.buffer, stride: o.rows };
    start += o.rows;
    return part;
  });
  const int8 = quantizesActivations(rec.gpu, weight, M);
  for (const chunk of weight.chunks) {
    matvecChunk(rec, weight.dtype, chunk, weight.cols, { resource: x, offset: 0 }, M, {
      resource: a.buffer,
      offset: 0,
      stride: a.rows,
    }, { split, int8, rmsNorm });
  }
}

/**
 * Whether decoding products with `weight` run as integer dot products on int8 activations
 * (matvec_q8.wgsl, matvec_q4.wgsl): quantized weights (whose rows are whole quantization groups).
 */
function usesInt8Activations(gpu: Gpu, weight: WeightStorage): boolean {
  return (weight.dtype === "q8" || weight.dtype === "q4") &&
    weight.cols % quantRowMultiple(weight.dtype) === 0 &&
    weight.cols <= MAX_INT8_K && gpu.limits.maxWorkgroupStorageBytes >= INT8_WORKGROUP_BYTES;
}

/** The longest rows whose activations quantize_act_q8.wgsl holds in workgroup memory (Llama's 14,336). */
const MAX_INT8_K = 14336;
/** Workgroup memory of quantize_act_q8.wgsl: the int8 values and a scale per group of 32. */
const INT8_WORKGROUP_BYTES = MAX_INT8_K + (MAX_INT8_K / QUANT_GROUP) * 4;

/**
 * One matrix-vector dispatch (matvec.wgsl, or matvec_q8 / matvec_q4 with int8) over `chunk` for `M`
 * tokens of `x` (bound resource, element offset): product row n goes to column n of `out` (rows `stride`
 * wide, plus `bias`, or added with `accumulate`), or, from `split[i].start` on, to column `n − start` of
 * `split[i].buffer` (at most two).
 * `n` counts the rows of the whole weight (`chunk.rowStart` + the row in the chunk), `K` its row length.
 */
function matvecChunk(
  rec: Recorder,
  dtype: WeightDtype,
  chunk: WeightChunk,
  K: number,
  x: { resource: GPUBuffer | GPUBufferBinding; offset: number },
  M: number,
  out: { resource: GPUBuffer | GPUBufferBinding; offset: number; stride: number },
  opts: {
    bias?: GPUBuffer | null;
    accumulate?: boolean;
    split?: { start: number; buffer: GPUBuffer; stride: number }[];
    /** q8 / q4 weights only: int8 activations and integer dot products (matvec_q8.wgsl / matvec_q4.wgsl). */
    int8?: boolean;
    /** With int8: the product is of silu(x) ⊙ up (up bound as `resource`, at element `offset`). */
    swigluUp?: { resource: GPUBuffer | GPUBufferBinding; offset: number };
    /** With int8: the product is of RMSNorm(x). */
    rmsNorm?: FoldedRmsNorm;
  },
): void {
  if ((opts.swigluUp || opts.rmsNorm) && !opts.int8) {
    throw new GpuError("internal: SwiGLU or RMSNorm folded into a product without int8 activations");
  }
  const split = opts.split ?? [];
  const [b, c] = split;
  const wgRows = matvecWorkgroupRows(chunk.rowCount);
  rec.dispatch(
    opts.int8 ? (dtype === "q4" ? "matvec_q4" : "matvec_q8") : matvecKernel(rec.gpu),
    opts.int8 ? undefined : dtype,
    [
      chunk.buffer,
      x.resource,
      out.resource,
      opts.bias ?? rec.dummy,
      b ? b.buffer : rec.dummyOutput(0),
      c ? c.buffer : rec.dummyOutput(1),
      // The int8 kernels' bindings 6 and 7: SwiGLU's up and the RMSNorm scale (quantize_act_q8.wgsl).
      ...(opts.int8 ? [opts.swigluUp?.resource ?? rec.dummy, opts.rmsNorm?.scale ?? rec.dummy] : []),
    ],
    pack("uuuuuuuuuuuuuuuuuuf", [
      M,
      K,
      chunk.rowCount,
      out.stride,
      chunk.rowStart,
      x.offset,
      out.offset,
      opts.bias ? 1 : 0,
      opts.accumulate ? 1 : 0,
      chunk.bufferRow,
      b ? b.start : NO_SPLIT,
      c ? c.start : NO_SPLIT,
      b ? b.stride : 0,
      c ? c.stride : 0,
      wgRows,
      opts.swigluUp ? 1 : 0,
      opts.swigluUp?.offset ?? 0,
      opts.rmsNorm ? 1 : 0,
      opts.rmsNorm?.eps ?? 0,
    ]),
    [Math.ceil(chunk.rowCount / wgRows), M, 1],
  );
}

/**
 * Rows per workgroup of the matrix-vector kernels: up to 8 per invocation (512), spread over an even
 * number of workgroups. A CPU adapter runs one workgroup per core at a time, so 1,536 rows as 3 × 512
 * keep one of two cores idle a third of the time, and 4 × 384 do not; a GPU runs them all at once.
 */
function matvecWorkgroupRows(rows: number): number {
  const full = Math.ceil(rows / MATVEC_ROWS / WORKGROUP);
  const groups = full + (full % 2);
  return Math.ceil(rows / MATVEC_ROWS / groups) * MATVEC_ROWS;
}

/**
 * RMSNorm over the last `dim` of `rows` rows (rms_norm.wgsl, a row per subgroup or per workgroup:
 * {@link rowsPerWorkgroup}) into a different buffer `out`. `scale` is f32 `[dim]`.
 */
export function rmsNorm(
  rec: Recorder,
  x: GPUBuffer,
  rows: number,
  dim: number,
  scale: GPUBuffer,
  eps: number,
  out: GPUBuffer,
): void {
  if (x === out) throw new GpuError("internal: rmsNorm cannot run in place");
  for (const [r0, n] of ranges(rec.gpu, rows, [dim * 4])) {
    const xw = bindWindow(rec.gpu, x, r0 * dim * 4, n * dim * 4);
    const ow = bindWindow(rec.gpu, out, r0 * dim * 4, n * dim * 4);
    const perWg = rowsPerWorkgroup(rec.gpu);
    rec.dispatch(
      perWg > 1 ? "rms_norm_subgroup" : "rms_norm",
      undefined,
      [xw.resource, scale, ow.resource],
      pack("uufuuu", [n, dim, eps, xw.elementOffset, ow.elementOffset, perWg]),
      gridPerItem(rec.gpu, Math.ceil(n / perWg)),
    );
  }
}

/** Applies RoPE in place to `x` `[T, nHeads, headDim]` with positions i32 `[T]` and the cos/sin table (rope.wgsl). */
export function rope(
  rec: Recorder,
  x: GPUBuffer,
  nTokens: number,
  nHeads: number,
  headDim: number,
  positions: GPUBuffer,
  table: GPUBuffer,
): void {
  const width = nHeads * headDim;
  for (const [t0, n] of ranges(rec.gpu, nTokens, [width * 4])) {
    const xw = bindWindow(rec.gpu, x, t0 * width * 4, n * width * 4);
    const pw = bindWindow(rec.gpu, positions, t0 * 4, n * 4);
    rec.dispatch(
      "rope",
      undefined,
      [xw.resource, pw.resource, table],
      pack("uuuuu", [n, nHeads, headDim / 2, xw.elementOffset, pw.elementOffset]),
      grid(rec.gpu, n * width / 2),
    );
  }
}

/**
 * Writes new keys and values `[b·s, nKv·headDim]` into `kCache` / `vCache` `[b, nKv, cacheLen, headDim]`
 * at slots `slot0…` (kv_cache_update.wgsl, one dispatch for both).
 */
export function kvCacheUpdate(
  rec: Recorder,
  k: GPUBuffer,
  v: GPUBuffer,
  batch: number,
  seq: number,
  nKv: number,
  headDim: number,
  kCache: GPUBuffer,
  vCache: GPUBuffer,
  cacheLen: number,
  slot0: number,
): void {
  const n = batch * seq * nKv * headDim;
  const kw = bindWindow(rec.gpu, k, 0, n * 4);
  const vw = bindWindow(rec.gpu, v, 0, n * 4);
  rec.dispatch(
    "kv_cache_update",
    undefined,
    [kw.resource, vw.resource, kCache, vCache],
    pack("uuuuuuuu", [batch, seq, nKv, headDim, cacheLen, slot0, kw.elementOffset, vw.elementOffset]),
    grid(rec.gpu, n),
  );
}

/**
 * RoPE on `q` `[b·s, nHeads, headDim]` (in place) and on `k` `[b·s, nKv·headDim]` on its way into
 * `kCache`, `v` into `vCache` (`[b, nKv, cacheLen, headDim]`, slots `slot0…`): {@link rope} twice and
 * {@link kvCacheUpdate} in one dispatch (rope_kv_update.wgsl). Returns false, recording nothing, when q
 * does not fit one storage binding (the caller then runs the three separately, which split by tokens).
 */
export function ropeKvUpdate(
  rec: Recorder,
  qkv: { q: GPUBuffer; k: GPUBuffer; v: GPUBuffer },
  batch: number,
  seq: number,
  nHeads: number,
  nKv: number,
  headDim: number,
  rope: { positions: GPUBuffer; table: GPUBuffer },
  cache: { k: GPUBuffer; v: GPUBuffer; len: number; slot0: number },
): boolean {
  const T = batch * seq;
  if (T * nHeads * headDim * 4 > rec.gpu.limits.maxBindingBytes - rec.gpu.limits.storageOffsetAlignment) {
    return false;
  }
  const qw = bindWindow(rec.gpu, qkv.q, 0, T * nHeads * headDim * 4);
  const kw = bindWindow(rec.gpu, qkv.k, 0, T * nKv * headDim * 4);
  const vw = bindWindow(rec.gpu, qkv.v, 0, T * nKv * headDim * 4);
  const pw = bindWindow(rec.gpu, rope.positions, 0, T * 4);
  rec.dispatch(
    "rope_kv_update",
    undefined,
    [qw.resource, kw.resource, vw.resource, pw.resource, rope.table, cache.k, cache.v],
    pack("uuuuuuuuuuu", [
      batch,
      seq,
      nHeads,
      nKv,
      headDim / 2,
      cache.len,
      cache.slot0,
      qw.elementOffset,
      kw.elementOffset,
      vw.elementOffset,
      pw.elementOffset,
    ]),
    grid(rec.gpu, T * (nHeads + 2 * nKv) * headDim / 2),
  );
  return true;
}

/** How attention masks keys (see attention.wgsl). */
export type AttentionMask =
  | { kind: "none" }
  | { kind: "causal" }
  /**
   * Bits `[T, words]` packed 32 per u32, row per query token, True = attend; `used` bounds the keys
   * (one past the last key any row allows).
   */
  | { kind: "bits"; bits: GPUBuffer; words: number; used?: number };

/**
 * Queries and keys (in use) from which attention runs as two matrix products (the vision encoder,
 * prefills: text attending to images, and causal self-attention over the prompt).
 */
const MATMUL_ATTENTION_MIN_QUERIES = 64;
/** See {@link MATMUL_ATTENTION_MIN_QUERIES}. */
const MATMUL_ATTENTION_MIN_KEYS = 64;

/** Query positions from which attention uses the query-tiled kernel (attention_tiled.wgsl). */
const TILED_ATTENTION_MIN_QUERIES = 8;

/** Workgroup memory attention_tiled.wgsl declares (8 queries × 64 vec4 + 8 × 256 scores + 8 × 64). */
const TILED_ATTENTION_WORKGROUP_BYTES = 8 * 64 * 16 + 8 * 256 * 4 + 8 * 64 * 4;

/** Largest head_dim the attention kernel holds in workgroup memory. */
export const MAX_HEAD_DIM = 256;

/**
 * Grouped-query SDPA (attention.wgsl + attention_combine.wgsl): `q` `[b·s, nHeads, headDim]`,
 * `k`/`v` `[b, nKv, kvLen, headDim]`, `out` `[b·s, nHeads·headDim]`, softmax scale `1/sqrt(headDim)`.
 */
export function attention(
  rec: Recorder,
  q: GPUBuffer,
  batch: number,
  seq: number,
  nHeads: number,
  nKv: number,
  headDim: number,
  k: GPUBuffer,
  v: GPUBuffer,
  kvLen: number,
  mask: AttentionMask,
  out: GPUBuffer,
): void {
  if (headDim > MAX_HEAD_DIM) throw new GpuError(`head_dim ${headDim} exceeds the supported ${MAX_HEAD_DIM}`);
  // Keys past the last one the mask allows cannot contribute: attend over the keys in use only.
  const kvUsed = Math.max(1, Math.min(kvLen, mask.kind === "bits" ? mask.used ?? kvLen : kvLen));
  if (
    headDim % 8 === 0 && seq >= MATMUL_ATTENTION_MIN_QUERIES && kvUsed >= MATMUL_ATTENTION_MIN_KEYS &&
    seq * (Math.ceil(kvUsed / 8) * 8) * 4 <= rec.gpu.limits.maxBufferSize &&
    // One KV head's keys (or transposed values) must fit a binding.
    Math.ceil(kvUsed / 8) * 8 * headDim * 4 <=
      rec.gpu.limits.maxBindingBytes - rec.gpu.limits.storageOffsetAlignment
  ) {
    attentionByMatmul(rec, q, batch, seq, nHeads, nKv, headDim, k, v, kvLen, kvUsed, mask, out);
    return;
  }
  const nTokens = batch * seq;
  // Many queries (prefill, the vision encoder): groups of 8 queries share every key and value load.
  const tiled = headDim % 4 === 0 && seq >= TILED_ATTENTION_MIN_QUERIES &&
    rec.gpu.limits.maxWorkgroupStorageBytes >= TILED_ATTENTION_WORKGROUP_BYTES;
  // Blocks of 256…2048 keys (1024 when tiled): at most ~64 blocks, and bounded loops per invocation.
  const block = Math.min(tiled ? 1024 : 2048, Math.max(256, Math.ceil(kvUsed / 64 / 256) * 256));
  const nBlocks = Math.ceil(kvUsed / block);
  const partialPerToken = nHeads * nBlocks * (headDim + 2) * 4;
  const width = nHeads * headDim;
  const maskWords = mask.kind === "bits" ? mask.words : 0;
  const room = rec.gpu.limits.maxBindingBytes - rec.gpu.limits.storageOffsetAlignment;
  const byBinding = Math.floor(room / Math.max(width * 4, partialPerToken, maskWords * 4, 4));
  if (byBinding < 8) throw new GpuError("internal: one token's attention state exceeds a binding");
  // Token ranges: within one sequence when tiled (a group of queries never straddles two sequences).
  const per = tiled
    ? Math.floor(Math.min(byBinding, 8 * rec.gpu.limits.maxWorkgroupsPerDimension) / 8) * 8
    : Math.min(byBinding, rec.gpu.limits.maxWorkgroupsPerDimension);
  const spans: [number, number][] = [];
  if (tiled) {
    for (let b = 0; b < batch; b++) {
      for (let s0 = 0; s0 < seq; s0 += per) spans.push([b * seq + s0, Math.min(per, seq - s0)]);
    }
  } else {
    for (let t0 = 0; t0 < nTokens; t0 += per) spans.push([t0, Math.min(per, nTokens - t0)]);
  }
  const partial = rec.scratch(Math.max(...spans.map(([, n]) => n)) * partialPerToken, "attention partial");
  const modeId = { none: 0, causal: 1, bits: 2 }[mask.kind];
  for (const [t0, n] of spans) {
    const qw = bindWindow(rec.gpu, q, t0 * width * 4, n * width * 4);
    const mw = mask.kind === "bits"
      ? bindWindow(rec.gpu, mask.bits, t0 * maskWords * 4, n * maskWords * 4)
      : null;
    const params = [
      seq,
      nHeads,
      nKv,
      headDim,
      kvLen,
      kvUsed,
      block,
      nBlocks,
      modeId,
      maskWords,
      t0,
      qw.elementOffset,
      mw ? mw.elementOffset : 0,
      1 / Math.sqrt(headDim),
    ];
    const kernel = tiled ? "attention_tiled" : headDim % 4 === 0 ? "attention_vec4" : "attention";
    const ow = bindWindow(rec.gpu, out, t0 * width * 4, n * width * 4);
    // attention_vec4 writes a single key block's result straight to the output: one dispatch fewer per
    // layer and step while the context is short (~80 us each on llvmpipe).
    const direct = kernel === "attention_vec4" && nBlocks === 1;
    rec.dispatch(
      kernel,
      undefined,
      [qw.resource, k, v, mw ? mw.resource : rec.dummy, direct ? ow.resource : partial],
      tiled
        ? pack("uuuuuuuuuuuuufu", [...params, n])
        : kernel === "attention_vec4"
        ? pack("uuuuuuuuuuuuufuu", [...params, direct ? 1 : 0, direct ? ow.elementOffset : 0])
        : pack("uuuuuuuuuuuuuf", params),
      // attention_vec4 serves up to 4 query heads of one KV head per workgroup.
      kernel === "attention_vec4"
        ? [nBlocks, nKv * Math.ceil(nHeads / nKv / 4), n]
        : [nBlocks, nHeads, tiled ? Math.ceil(n / 8) : n],
    );
    if (direct) continue;
    rec.dispatch(
      "attention_combine",
      undefined,
      [partial, ow.resource],
      pack("uuuuu", [n, nHeads, headDim, nBlocks, ow.elementOffset]),
      grid(rec.gpu, n * width),
    );
  }
}

/** `gate = silu(gate) * up`, elementwise over `n` values (swiglu_vec4.wgsl where aligned, else swiglu.wgsl). */
export function swiglu(rec: Recorder, gate: GPUBuffer, up: GPUBuffer, n: number): void {
  for (const [i0, c] of ranges(rec.gpu, n, [4])) {
    const gw = bindWindow(rec.gpu, gate, i0 * 4, c * 4);
    const uw = bindWindow(rec.gpu, up, i0 * 4, c * 4);
    if (c % 4 === 0 && gw.elementOffset % 4 === 0 && uw.elementOffset % 4 === 0) {
      rec.dispatch(
        "swiglu_vec4",
        undefined,
        [gw.resource, uw.resource],
        pack("uuu", [c / 4, gw.elementOffset / 4, uw.elementOffset / 4]),
        grid(rec.gpu, c / 4),
      );
      continue;
    }
    rec.dispatch(
      "swiglu",
      undefined,
      [gw.resource, uw.resource],
      pack("uuu", [c, gw.elementOffset, uw.elementOffset]),
      grid(rec.gpu, c),
    );
  }
}

/**
 * `x += tanh(gate) · y` (or `x += y` without a gate), skipping tokens whose `skip` flag (u32 `[T]`)
 * is set (gated_residual.wgsl).
 */
export function gatedResidual(
  rec: Recorder,
  x: GPUBuffer,
  y: GPUBuffer,
  nTokens: number,
  dim: number,
  gate: GPUBuffer | null,
  skip: GPUBuffer | null,
): void {
  for (const [t0, n] of ranges(rec.gpu, nTokens, [dim * 4])) {
    const xw = bindWindow(rec.gpu, x, t0 * dim * 4, n * dim * 4);
    const yw = bindWindow(rec.gpu, y, t0 * dim * 4, n * dim * 4);
    const sw = skip ? bindWindow(rec.gpu, skip, t0 * 4, n * 4) : null;
    rec.dispatch(
      "gated_residual",
      undefined,
      [xw.resource, yw.resource, gate ?? rec.dummy, sw ? sw.resource : rec.dummy],
      pack("uuuuuuu", [
        n,
        dim,
        gate ? 1 : 0,
        skip ? 1 : 0,
        xw.elementOffset,
        yw.elementOffset,
        sw ? sw.elementOffset : 0,
      ]),
      grid(rec.gpu, n * dim),
    );
  }
}

/** Sampling settings of {@link sample} (torchtune `generation.sample` plus top-p). */
export interface SampleSettings {
  /** Softmax temperature; 0 means greedy. */
  temperature: number;
  /** Keep the k largest logits (ties with the k-th survive); 0 or null = off; 1 = greedy. */
  top_k: number | null;
  /** Nucleus sampling mass in (0, 1]; 1 = off. */
  top_p: number;
  /** Seed of the counter-based random numbers. */
  seed: number;
}

/**
 * Samples one token per row of `logits` `[rows, vocab]` (sample.wgsl; greedy settings take argmax.wgsl)
 * into `next` i32 `[rows]`; `step` (with the seed) picks the random numbers.
 */
export function sample(
  rec: Recorder,
  logits: GPUBuffer,
  rows: number,
  vocab: number,
  next: GPUBuffer,
  step: number,
  s: SampleSettings,
): void {
  const lw = bindWindow(rec.gpu, logits, 0, rows * vocab * 4);
  if (s.temperature <= 0 || s.top_k === 1) {
    rec.dispatch("argmax", undefined, [lw.resource, next], pack("uu", [vocab, lw.elementOffset]), [
      rows,
      1,
      1,
    ]);
    return;
  }
  rec.dispatch(
    "sample",
    undefined,
    [lw.resource, next],
    pack("ufufuuu", [
      vocab,
      s.temperature,
      s.top_k ?? 0,
      s.top_p,
      s.seed >>> 0,
      step,
      lw.elementOffset,
    ]),
    [rows, 1, 1],
  );
}

/**
 * `out[outOff + z·outZ + r·outCols + c] = c < cols ? src[srcOff + z·srcZ + r·rowStride + c·colStride] : 0`
 * for `z < batches`, `r < rows`, `c < outCols` (strided_copy.wgsl), in one dispatch.
 */
function stridedCopy(
  rec: Recorder,
  src: GPUBuffer,
  g: {
    batches: number;
    rows: number;
    cols: number;
    outCols: number;
    srcOff: number;
    rowStride: number;
    colStride: number;
    srcZ: number;
    outOff: number;
    outZ: number;
  },
  out: GPUBuffer,
): void {
  const span = (g.batches - 1) * g.srcZ + (g.rows - 1) * g.rowStride + (g.cols - 1) * g.colStride + 1;
  const sw = bindWindow(rec.gpu, src, g.srcOff * 4, span * 4);
  const [x, y] = grid(rec.gpu, g.rows * g.outCols);
  rec.dispatch(
    "strided_copy",
    undefined,
    [sw.resource, out],
    pack("uuuuuuuuu", [
      g.rows,
      g.cols,
      g.outCols,
      sw.elementOffset,
      g.rowStride,
      g.colStride,
      g.outOff,
      g.srcZ,
      g.outZ,
    ]),
    [x, y, g.batches],
  );
}

/**
 * Per-head products of attention as one matmul dispatch ({@link matmulTile}) over `heads` heads (workgroups
 * along z):
 * for head z, `out[outOff + z·outZ + m·outStride + n] = Σ_k x[xOff + z·xZ + m·xStride + k] ·
 * w[(wRow0 + ((z + zShift) / group)·wZRows + n)·K + k]` for `m < M`, `n < rows`, `k < K` (f32 weights).
 */
function matmulHeads(
  rec: Recorder,
  w: GPUBuffer | GPUBufferBinding,
  x: BoundWindow,
  out: BoundWindow,
  g: {
    heads: number;
    M: number;
    K: number;
    rows: number;
    xOff: number;
    xStride: number;
    xZ: number;
    outOff: number;
    outStride: number;
    outZ: number;
    wRow0: number;
    wZRows: number;
    group: number;
    zShift: number;
  },
): void {
  const tile = matmulTile(rec.gpu, g.rows);
  rec.dispatch(
    tile.kernel,
    "f32",
    [w, x.resource, out.resource, rec.dummy],
    pack("uuuuuuuuuuuuuuuuu", [
      g.M,
      g.K,
      g.rows,
      g.outStride,
      0,
      x.elementOffset + g.xOff,
      out.elementOffset + g.outOff,
      0,
      0,
      g.wRow0,
      g.xStride,
      g.xZ,
      g.outZ,
      g.wZRows,
      g.group,
      g.zShift,
      tile.lanesX,
    ]),
    matmulGrid(tile, g.rows, g.M, g.heads),
  );
}

/**
 * Attention over many queries and keys (the vision encoder: thousands; prefills) as two matrix products
 * with the register-tiled matmul, every head of a range in one dispatch: scores = q·kᵀ over the keys in
 * use, a masked row softmax (softmax_rows.wgsl, a row per subgroup or per workgroup), then
 * scores·v. Much faster on CPU adapters than the key-block kernels, which reload keys per query group.
 * q is read in place (heads are columns of its rows), and so are the keys (rows of the cache) where their
 * window starts on a row; the transposed values of the range's KV heads are gathered first (one dispatch).
 * Same inputs and output as {@link attention}; `kvUsed` ≤ `kvLen` keys.
 */
function attentionByMatmul(
  rec: Recorder,
  q: GPUBuffer,
  batch: number,
  seq: number,
  nHeads: number,
  nKv: number,
  hd: number,
  k: GPUBuffer,
  v: GPUBuffer,
  kvLen: number,
  kvUsed: number,
  mask: AttentionMask,
  out: GPUBuffer,
): void {
  // Keys padded to a multiple of 8 so the second product takes the vec4 kernel; padding scores are 0.
  const Lp = Math.ceil(kvUsed / 8) * 8;
  const group = nHeads / nKv;
  const modeId = { none: 0, causal: 1, bits: 2 }[mask.kind];
  const words = mask.kind === "bits" ? mask.words : 0;
  const room = rec.gpu.limits.maxBindingBytes - rec.gpu.limits.storageOffsetAlignment;
  // Queries in ranges whose q, output, mask and one head's scores fit a binding; then heads in ranges
  // whose scores, and whose KV heads' keys and transposed values, fit one.
  const perKv = Lp * hd * 4;
  if (perKv > room) throw new GpuError("internal: one head's keys exceed a binding");
  const maxRows = MATMUL_MIN_WORKGROUP_TOKENS * rec.gpu.limits.maxWorkgroupsPerDimension;
  const perWg = rowsPerWorkgroup(rec.gpu);
  for (const [r0, n] of ranges(rec.gpu, seq, [Lp * 4, nHeads * hd * 4, words * 4], maxRows)) {
    const headsPer = Math.max(1, Math.min(nHeads, Math.floor(room / (n * Lp * 4))));
    const scores = rec.scratch(headsPer * n * Lp * 4, "attention scores");
    for (let b = 0; b < batch; b++) {
      const row0 = b * seq + r0;
      const qw = bindWindow(rec.gpu, q, row0 * nHeads * hd * 4, n * nHeads * hd * 4);
      const ow = bindWindow(rec.gpu, out, row0 * nHeads * hd * 4, n * nHeads * hd * 4);
      const mw = mask.kind === "bits"
        ? bindWindow(rec.gpu, mask.bits, row0 * words * 4, n * words * 4)
        : null;
      for (let h0 = 0; h0 < nHeads;) {
        // Heads h0 … h0 + nh − 1, whose KV heads kv0 … kv0 + nkv − 1 fit a binding twice over: their
        // keys and transposed values as gathered (Lp rows each), and their span of the cache (kvLen rows
        // apart), which the keys are read from in place and the values gathered from. One KV head fits.
        const kv0 = Math.floor(h0 / group);
        const kvHeadsOf = (nh: number) => Math.floor((h0 + nh - 1) / group) - kv0 + 1;
        const cacheSpan = (nkv: number) => ((nkv - 1) * kvLen + kvUsed) * hd * 4;
        let nh = Math.min(headsPer, nHeads - h0);
        while (nh > 1 && (kvHeadsOf(nh) * perKv > room || cacheSpan(kvHeadsOf(nh)) > room)) nh--;
        const nkv = kvHeadsOf(nh);
        const kvBase = (b * nKv + kv0) * kvLen * hd;
        const kvHeads = { batches: nkv, srcOff: kvBase, srcZ: kvLen * hd, outOff: 0 };
        // The keys of a KV head are rows of the cache already: the product reads them in place when their
        // window starts on a row (the binding offset is rounded down to the storage alignment).
        const kw = bindWindow(rec.gpu, k, kvBase * 4, cacheSpan(nkv));
        const copyKeys = () => {
          const kh = rec.scratch(nkv * Lp * hd * 4, "attention keys");
          const rows = { rows: kvUsed, cols: hd, outCols: hd, rowStride: hd, colStride: 1, outZ: Lp * hd };
          stridedCopy(rec, k, { ...kvHeads, ...rows }, kh);
          return { w: kh as GPUBuffer | GPUBufferBinding, row0: 0, zRows: Lp };
        };
        const keys = kw.elementOffset % hd === 0
          ? { w: kw.resource, row0: kw.elementOffset / hd, zRows: kvLen }
          : copyKeys();
        const vt = rec.scratch(nkv * hd * Lp * 4, "attention values transposed");
        stridedCopy(rec, v, {
          ...kvHeads,
          rows: hd,
          cols: kvUsed,
          outCols: Lp,
          rowStride: 1,
          colStride: hd,
          outZ: hd * Lp,
        }, vt);
        const sw = bindWindow(rec.gpu, scores, 0, nh * n * Lp * 4);
        const heads = { heads: nh, M: n, group, zShift: h0 % group };
        // scores[z][m, j] = q[m, h0 + z] · k[kv(z)][j]
        matmulHeads(rec, keys.w, qw, sw, {
          ...heads,
          K: hd,
          rows: kvUsed,
          xOff: h0 * hd,
          xStride: nHeads * hd,
          xZ: hd,
          outOff: 0,
          outStride: Lp,
          outZ: n * Lp,
          wRow0: keys.row0,
          wZRows: keys.zRows,
        });
        rec.dispatch(
          perWg > 1 ? "softmax_rows_subgroup" : "softmax_rows",
          undefined,
          [sw.resource, mw ? mw.resource : rec.dummy],
          pack("uuufuuuuuuu", [
            nh * n,
            kvUsed,
            Lp,
            1 / Math.sqrt(hd),
            sw.elementOffset,
            modeId,
            words,
            mw ? mw.elementOffset : 0,
            r0,
            n,
            perWg,
          ]),
          gridPerItem(rec.gpu, Math.ceil(nh * n / perWg)),
        );
        // out[m, h0 + z] = scores[z][m] · vᵀ[kv(z)]
        matmulHeads(rec, vt, sw, ow, {
          ...heads,
          K: Lp,
          rows: hd,
          xOff: 0,
          xStride: Lp,
          xZ: n * Lp,
          outOff: h0 * hd,
          outStride: nHeads * hd,
          outZ: hd,
          wRow0: 0,
          wZRows: hd,
        });
        h0 += nh;
      }
    }
  }
}
