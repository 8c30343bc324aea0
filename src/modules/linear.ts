/** @module torchtune's use of `nn.Linear`. */
import { type FoldedRmsNorm, linear, type Recorder } from "../gpu/ops.ts";
import { Module, Parameter } from "./module.ts";

/**
 * Mirrors `nn.Linear(in_dim, out_dim, bias)`: `y = x · Wᵀ (+ b)` with `weight` `[out_dim, in_dim]`
 * kept as stored (the decoder has no biases; the vision encoder's MLPs and projector do).
 */
export class Linear extends Module {
  /** `nn.Linear.weight` `[out_dim, in_dim]`, in the checkpoint's dtype. */
  readonly weight: Parameter;
  /** `nn.Linear.bias` `[out_dim]` (kept as f32), or null for `bias=False`. */
  readonly bias: Parameter | null;
  /** Input features (`nn.Linear.in_features`). */
  readonly in_dim: number;
  /** Output features (`nn.Linear.out_features`). */
  readonly out_dim: number;

  /**
   * Builds the layer; the weights are empty until loaded.
   *
   * @param in_dim input features
   * @param out_dim output features
   * @param opts `bias` (default false, as every decoder projection); `weight_shape` when the stored
   * weight has more dimensions that flatten to `[out_dim, in_dim]` (a Conv2d used as a matmul)
   */
  constructor(in_dim: number, out_dim: number, opts: { bias?: boolean; weight_shape?: number[] } = {}) {
    super();
    this.in_dim = in_dim;
    this.out_dim = out_dim;
    this.weight = new Parameter(opts.weight_shape ?? [out_dim, in_dim]);
    this.bias = opts.bias ? new Parameter([out_dim], true) : null;
  }

  /** State-dict entries `weight` (and `bias`). */
  protected override params(): Record<string, Parameter> {
    return this.bias ? { weight: this.weight, bias: this.bias } : { weight: this.weight };
  }

  /**
   * `out[M, out_dim] = x[M, in_dim] · Wᵀ (+ b)`, or `out += …` with `accumulate` (a residual add). With
   * `options.rmsNorm` the product is of RMSNorm(x) and with `options.swigluUp` of silu(x) ⊙ up (ops.ts
   * `linear`: folded into quantized decoding's int8 step where it can).
   */
  forward(
    rec: Recorder,
    x: GPUBuffer,
    M: number,
    out: GPUBuffer,
    accumulate = false,
    options: { rmsNorm?: FoldedRmsNorm; swigluUp?: GPUBuffer } = {},
  ): void {
    linear(rec, this.weight.storage, x, M, out, this.bias ? this.bias.buffer : null, accumulate, options);
  }
}
