/** @module `nn.LayerNorm` (torchtune's `Fp32LayerNorm`). */
import { layerNorm } from "../gpu/ops_vision.ts";
import type { Recorder } from "../gpu/ops.ts";
import { Module, Parameter } from "./module.ts";

/** Mirrors `nn.LayerNorm(dim, eps)` with affine `weight` and `bias` `[dim]`, computed in f32. */
export class LayerNorm extends Module {
  /** `weight` `[dim]`. */
  readonly weight: Parameter;
  /** `bias` `[dim]`. */
  readonly bias: Parameter;
  /** Normalised size. */
  readonly dim: number;
  /** Added to the variance. */
  readonly eps: number;

  /**
   * Builds the norm; its parameters are empty until loaded.
   *
   * @param dim normalised size
   * @param eps 1e-5 everywhere in the vision encoder
   */
  constructor(dim: number, eps = 1e-5) {
    super();
    this.dim = dim;
    this.eps = eps;
    this.weight = new Parameter([dim], true);
    this.bias = new Parameter([dim], true);
  }

  /** State-dict entries `weight`, `bias`. */
  protected override params(): Record<string, Parameter> {
    return { weight: this.weight, bias: this.bias };
  }

  /** Normalises `rows` rows of `x` `[rows, dim]` into `out`. */
  forward(rec: Recorder, x: GPUBuffer, rows: number, out: GPUBuffer): void {
    layerNorm(rec, x, rows, this.dim, this.weight.buffer, this.bias.buffer, this.eps, out);
  }
}
