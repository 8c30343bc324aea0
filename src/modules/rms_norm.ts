/** @module torchtune `RMSNorm`. */
import { type FoldedRmsNorm, quantizesActivations, type Recorder, rmsNorm } from "../gpu/ops.ts";
import type { WeightStorage } from "../gpu/buffers.ts";
import type { LayerNorm } from "./layer_norm.ts";
import { Module, Parameter } from "./module.ts";

/**
 * Mirrors torchtune `modules.RMSNorm(dim, eps=1e-6)`: `x · rsqrt(mean(x²) + eps) · scale` over the
 * last dimension, computed in f32.
 */
export class RMSNorm extends Module {
  /** `scale` `[dim]` (HF: `weight`). */
  readonly scale: Parameter;
  /** torchtune `dim`: size of the normalised last dimension. */
  readonly dim: number;
  /** torchtune `eps`, added to `mean(x²)`. */
  readonly eps: number;

  /**
   * Builds the norm; `scale` is empty until loaded.
   *
   * @param dim normalised size
   * @param eps torchtune's default is 1e-6; decoder layers pass 1e-5
   */
  constructor(dim: number, eps = 1e-6) {
    super();
    this.dim = dim;
    this.eps = eps;
    this.scale = new Parameter([dim], true);
  }

  /** State-dict entry `scale`. */
  protected override params(): Record<string, Parameter> {
    return { scale: this.scale };
  }

  /** Normalises `rows` rows of `x` `[rows, dim]` into `out`. */
  forward(rec: Recorder, x: GPUBuffer, rows: number, out: GPUBuffer): void {
    rmsNorm(rec, x, rows, this.dim, this.scale.buffer, this.eps, out);
  }
}

/**
 * The input of the product over `into` that follows `norm` over `rows` rows of `x`: where that product
 * quantizes its input (ops.ts `quantizesActivations`: quantized decoding) and `norm` is an RMSNorm, `x`
 * itself and the norm to fold into the product (`linear` / `linearSplit`'s `rmsNorm`); otherwise
 * `norm(x)` in the layer's shared "normed" scratch buffer (`into` null: nothing folds, as when several
 * products read the input). Without a norm, `x`.
 */
export function normInput(
  rec: Recorder,
  norm: RMSNorm | LayerNorm | null,
  x: GPUBuffer,
  rows: number,
  into: WeightStorage | null,
): { x: GPUBuffer; fold?: FoldedRmsNorm } {
  if (!norm) return { x };
  if (norm instanceof RMSNorm && into && quantizesActivations(rec.gpu, into, rows)) {
    return { x, fold: { scale: norm.scale.buffer, eps: norm.eps } };
  }
  const normed = rec.scratch(rows * norm.dim * 4, "normed");
  norm.forward(rec, x, rows, normed);
  return { x: normed };
}
