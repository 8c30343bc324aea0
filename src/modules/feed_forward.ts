/** @module torchtune `FeedForward` (SwiGLU). */
import { type Recorder, swiglu } from "../gpu/ops.ts";
import { Linear } from "./linear.ts";
import { Module } from "./module.ts";

/** Mirrors torchtune `modules.FeedForward` as Llama builds it: `w2(silu(w1 x) ⊙ w3 x)`, no biases. */
export class FeedForward extends Module {
  /** gate projection `[hidden, E]` (HF `gate_proj`). */
  readonly w1: Linear;
  /** down projection `[E, hidden]` (HF `down_proj`). */
  readonly w2: Linear;
  /** up projection `[hidden, E]` (HF `up_proj`). */
  readonly w3: Linear;
  /** MLP width (`intermediate_dim` of the builder). */
  readonly hidden_dim: number;

  /**
   * Builds `w1`, `w2`, `w3`; their weights are empty until loaded.
   *
   * @param dim model width `E`
   * @param hidden_dim MLP width
   */
  constructor(dim: number, hidden_dim: number) {
    super();
    this.hidden_dim = hidden_dim;
    this.w1 = new Linear(dim, hidden_dim);
    this.w2 = new Linear(hidden_dim, dim);
    this.w3 = new Linear(dim, hidden_dim);
  }

  /** Children `w1`, `w2`, `w3`. */
  protected override children(): Record<string, Module> {
    return { w1: this.w1, w2: this.w2, w3: this.w3 };
  }

  /** `out[T, E] = FFN(x[T, E])`, using two scratch buffers `[T, hidden]`. */
  forward(rec: Recorder, x: GPUBuffer, T: number, out: GPUBuffer): void {
    const gate = rec.scratch(T * this.hidden_dim * 4, "mlp gate");
    const up = rec.scratch(T * this.hidden_dim * 4, "mlp up");
    this.w1.forward(rec, x, T, gate);
    this.w3.forward(rec, x, T, up);
    swiglu(rec, gate, up, T * this.hidden_dim);
    this.w2.forward(rec, gate, T, out);
  }
}
