/** @module torchtune's use of `nn.Linear(bias=False)`. */
import { linear, type Recorder } from "../gpu/ops.ts";
import { Module, Parameter } from "./module.ts";

/** Mirrors `nn.Linear(in_dim, out_dim, bias=False)`: `y = x · Wᵀ` with `weight` `[out_dim, in_dim]` kept as stored. */
export class Linear extends Module {
  /** `nn.Linear.weight` `[out_dim, in_dim]`, in the checkpoint's dtype. */
  readonly weight: Parameter;
  /** Input features (`nn.Linear.in_features`). */
  readonly in_dim: number;
  /** Output features (`nn.Linear.out_features`). */
  readonly out_dim: number;

  /**
   * Builds the layer; the weight is empty until loaded.
   *
   * @param in_dim input features
   * @param out_dim output features
   */
  constructor(in_dim: number, out_dim: number) {
    super();
    this.in_dim = in_dim;
    this.out_dim = out_dim;
    this.weight = new Parameter([out_dim, in_dim]);
  }

  /** State-dict entry `weight`. */
  protected override params(): Record<string, Parameter> {
    return { weight: this.weight };
  }

  /** `out[M, out_dim] = x[M, in_dim] · Wᵀ`. */
  forward(rec: Recorder, x: GPUBuffer, M: number, out: GPUBuffer): void {
    linear(rec, this.weight.storage, x, M, out);
  }
}
