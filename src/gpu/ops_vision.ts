/**
 * One function per vision-encoder kernel (LayerNorm, GELU, patch extraction, token assembly with
 * position embeddings, tile embeddings, feature interleaving), in the style of `ops.ts`.
 *
 * @module
 */
import { bindWindow } from "./buffers.ts";
import { grid, gridPerItem, pack, ranges, type Recorder, rowsPerWorkgroup } from "./ops.ts";

/** LayerNorm over the last `dim` of `rows` rows (layer_norm.wgsl) into a different buffer `out`. */
export function layerNorm(
  rec: Recorder,
  x: GPUBuffer,
  rows: number,
  dim: number,
  weight: GPUBuffer,
  bias: GPUBuffer,
  eps: number,
  out: GPUBuffer,
): void {
  for (const [r0, n] of ranges(rec.gpu, rows, [dim * 4])) {
    const xw = bindWindow(rec.gpu, x, r0 * dim * 4, n * dim * 4);
    const ow = bindWindow(rec.gpu, out, r0 * dim * 4, n * dim * 4);
    const perWg = rowsPerWorkgroup(rec.gpu);
    rec.dispatch(
      perWg > 1 ? "layer_norm_subgroup" : "layer_norm",
      undefined,
      [xw.resource, weight, bias, ow.resource],
      pack("uufuuu", [n, dim, eps, xw.elementOffset, ow.elementOffset, perWg]),
      gridPerItem(rec.gpu, Math.ceil(n / perWg)),
    );
  }
}

/** Exact (erf) GELU in place over `n` values (gelu.wgsl). */
export function gelu(rec: Recorder, x: GPUBuffer, n: number): void {
  for (const [i0, c] of ranges(rec.gpu, n, [4])) {
    const xw = bindWindow(rec.gpu, x, i0 * 4, c * 4);
    rec.dispatch("gelu", undefined, [xw.resource], pack("uu", [c, xw.elementOffset]), grid(rec.gpu, c));
  }
}

/** `images` `[n, C, T, T]` → `patches` `[n·g², C·P·P]` (patchify.wgsl), image by image range. */
export function patchify(
  rec: Recorder,
  images: GPUBuffer,
  nImages: number,
  channels: number,
  tile: number,
  patch: number,
  out: GPUBuffer,
): void {
  const perImage = channels * tile * tile;
  for (const [i0, n] of ranges(rec.gpu, nImages, [perImage * 4])) {
    const iw = bindWindow(rec.gpu, images, i0 * perImage * 4, n * perImage * 4);
    const ow = bindWindow(rec.gpu, out, i0 * perImage * 4, n * perImage * 4);
    rec.dispatch(
      "patchify",
      undefined,
      [iw.resource, ow.resource],
      pack("uuuuuu", [n, channels, tile, patch, ow.elementOffset, iw.elementOffset]),
      grid(rec.gpu, n * perImage),
    );
  }
}

/** A byte range of a buffer (a table row, one tile's tokens), bound as a window. */
export interface RowRef {
  /** The buffer holding the range. */
  buffer: GPUBuffer;
  /** Start of the range, a multiple of 4. */
  byteOffset: number;
  /** Length of the range. */
  bytes: number;
}

/**
 * Assembles one tile's tokens (vision_embed.wgsl): CLS + patch embeddings with the pre-tile, local and
 * global position embeddings. `global`/`pre` are null for padding tiles (and when not tiled).
 */
export function visionEmbed(
  rec: Recorder,
  args: {
    patches: RowRef;
    cls: GPUBuffer;
    local: GPUBuffer;
    global: RowRef | null;
    pre: RowRef | null;
    gates: GPUBuffer;
    out: RowRef;
    nTok: number;
    dim: number;
    tiled: boolean;
  },
): void {
  const win = (r: RowRef | null) => r ? bindWindow(rec.gpu, r.buffer, r.byteOffset, r.bytes) : null;
  const pw = win(args.patches)!;
  const gw = win(args.global);
  const prw = win(args.pre);
  const ow = win(args.out)!;
  rec.dispatch(
    "vision_embed",
    undefined,
    [
      pw.resource,
      args.cls,
      args.local,
      gw?.resource ?? rec.dummy,
      prw?.resource ?? rec.dummy,
      args.gates,
      ow.resource,
    ],
    pack("uuuuuuuu", [
      args.nTok,
      args.dim,
      gw ? 1 : 0,
      args.tiled ? 1 : 0,
      pw.elementOffset,
      gw?.elementOffset ?? 0,
      prw?.elementOffset ?? 0,
      ow.elementOffset,
    ]),
    grid(rec.gpu, args.nTok * args.dim),
  );
}

/** `x[r, :] += tanh(gate) · v` for `rows` rows of a window (broadcast_add.wgsl). */
export function broadcastAdd(
  rec: Recorder,
  x: RowRef,
  rows: number,
  dim: number,
  v: RowRef,
  gate: GPUBuffer,
): void {
  const xw = bindWindow(rec.gpu, x.buffer, x.byteOffset, x.bytes);
  const vw = bindWindow(rec.gpu, v.buffer, v.byteOffset, v.bytes);
  rec.dispatch(
    "broadcast_add",
    undefined,
    [xw.resource, vw.resource, gate],
    pack("uuuu", [rows, dim, xw.elementOffset, vw.elementOffset]),
    grid(rec.gpu, rows * dim),
  );
}

/** `out[r, col0 + d·stride] = src[r, d]` for `rows` rows (interleave_columns.wgsl), in row ranges. */
export function interleaveColumns(
  rec: Recorder,
  src: GPUBuffer,
  rows: number,
  dim: number,
  out: GPUBuffer,
  outDim: number,
  col0: number,
  stride: number,
): void {
  for (const [r0, n] of ranges(rec.gpu, rows, [dim * 4, outDim * 4])) {
    const sw = bindWindow(rec.gpu, src, r0 * dim * 4, n * dim * 4);
    const ow = bindWindow(rec.gpu, out, r0 * outDim * 4, n * outDim * 4);
    rec.dispatch(
      "interleave_columns",
      undefined,
      [sw.resource, ow.resource],
      pack("uuuuuuu", [n, dim, outDim, col0, stride, sw.elementOffset, ow.elementOffset]),
      grid(rec.gpu, n * dim),
    );
  }
}
