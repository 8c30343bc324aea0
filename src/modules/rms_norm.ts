/** @module torchtune `RMSNorm`. */
import { type FoldedRmsNorm, type Recorder, rmsNorm } from "../gpu/ops.ts";
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
 * The input of the product that follows `norm` over `rows` rows of `x`: with `folds` (the product quantizes
 * its input, ops.ts `quantizesActivations`), `x` itself and the norm to fold into that product; otherwise
 * `norm(x)` in the layer's shared "normed" scratch buffer. Without a norm, `x`.
 */
export function normInput(
  rec: Recorder,
  norm: RMSNorm | null,
  x: GPUBuffer,
  rows: number,
  folds: boolean,
): { x: GPUBuffer; fold?: FoldedRmsNorm } {
  if (!norm) return { x };
  if (folds) return { x, fold: { scale: norm.scale.buffer, eps: norm.eps } };
  const normed = rec.scratch(rows * norm.dim * 4, "normed");
  norm.forward(rec, x, rows, normed);
  return { x: normed };
}
