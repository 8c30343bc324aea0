/** @module torchtune `FeedForward`. */
import { canLinearSplit, linearSplit, type Recorder } from "../gpu/ops.ts";
import { gelu } from "../gpu/ops_vision.ts";
import type { Linear } from "./linear.ts";
import { normInput } from "./rms_norm.ts";
import type { Norm } from "./transformer.ts";
import { Module, StackedWeights } from "./module.ts";

/** Activations {@link FeedForward} supports: SiLU (Llama's SwiGLU) and exact GELU (CLIP). */
export type Activation = "silu" | "gelu";

/**
 * Mirrors torchtune `modules.FeedForward(gate_proj, down_proj, up_proj=None, activation)`:
 * `w2(act(w1 x) ⊙ w3 x)` with an up projection (Llama's SwiGLU), `w2(act(w1 x))` without (CLIP's MLP).
 */
export class FeedForward extends Module {
  /** gate projection `[hidden, E]` (HF `gate_proj`, CLIP `fc1`). */
  readonly w1: Linear;
  /** down projection `[E, hidden]` (HF `down_proj`, CLIP `fc2`). */
  readonly w2: Linear;
  /** up projection `[hidden, E]` (HF `up_proj`), or null. */
  readonly w3: Linear | null;
  /** The activation applied to `w1 x`. */
  readonly activation: Activation;
  /** MLP width. */
  readonly hidden_dim: number;
  /** w1 and w3 stacked (no biases): a decode step projects both in one dispatch. */
  readonly #gateUp: StackedWeights | null;

  /** Same arguments as torchtune (`gate_proj`, `down_proj`, `up_proj`, `activation`). */
  constructor(
    opts: { gate_proj: Linear; down_proj: Linear; up_proj?: Linear | null; activation?: Activation },
  ) {
    super();
    this.w1 = opts.gate_proj;
    this.w2 = opts.down_proj;
    this.w3 = opts.up_proj ?? null;
    this.activation = opts.activation ?? "silu";
    this.hidden_dim = this.w1.out_dim;
    if ((this.w3 !== null) !== (this.activation === "silu")) {
      throw new Error("FeedForward: supported forms are SiLU with an up projection, and GELU without one");
    }
    this.#gateUp = this.w3 && !this.w1.bias && !this.w3.bias
      ? new StackedWeights([this.w1.weight, this.w3.weight])
      : null;
  }

  /** Children `w1`, `w2` (and `w3`). */
  protected override children(): Record<string, Module | null> {
    return { w1: this.w1, w2: this.w2, w3: this.w3 };
  }

  /**
   * `out[T, E] = FFN(x[T, E])` (or `out += …` with `accumulate`), using scratch buffers `[T, hidden]`.
   * With `norm`, of `norm(x)`: the layer's `mlp_norm`, folded into the w1/w3 product when that quantizes
   * its input (quantized decoding), and applied here otherwise.
   */
  forward(
    rec: Recorder,
    x: GPUBuffer,
    T: number,
    out: GPUBuffer,
    accumulate = false,
    norm: Norm | null = null,
  ): void {
    const gate = rec.scratch(T * this.hidden_dim * 4, "mlp gate");
    const stacked = this.#gateUp?.storage ?? null;
    const split = stacked !== null && canLinearSplit(stacked, T);
    // w1 and w3 read the normalised input: it folds only into their one stacked product.
    const input = normInput(rec, norm, x, T, split ? stacked : null);
    x = input.x;
    // The activation: the SwiGLU gate is applied by the down projection (folded into the int8 prologue
    // of quantized decoding, a pass before the product otherwise); GELU in place here.
    let up: GPUBuffer | undefined;
    if (this.w3) {
      up = rec.scratch(T * this.hidden_dim * 4, "mlp up");
      if (split) {
        // Decoding: w1 x and w3 x in one product over the stacked weights.
        linearSplit(rec, stacked, x, T, [{ buffer: gate, rows: this.hidden_dim }, {
          buffer: up,
          rows: this.hidden_dim,
        }], input.fold);
      } else {
        this.w1.forward(rec, x, T, gate);
        this.w3.forward(rec, x, T, up);
      }
    } else {
      this.w1.forward(rec, x, T, gate);
      gelu(rec, gate, T * this.hidden_dim);
    }
    this.w2.forward(rec, gate, T, out, accumulate, { swigluUp: up });
  }
}
