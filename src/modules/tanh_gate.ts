/** @module torchtune `TanhGate`. */
import { Module, Parameter } from "./module.ts";

/** Mirrors torchtune `modules.TanhGate`: multiplies its input by `tanh(scale)`; `scale` is `[1]`. */
export class TanhGate extends Module {
  /** The raw gate (HF: `cross_attn_attn_gate` / `cross_attn_mlp_gate`); tanh is applied in the kernel. */
  readonly scale: Parameter = new Parameter([1], true);

  /** State-dict entry `scale`. */
  protected override params(): Record<string, Parameter> {
    return { scale: this.scale };
  }
}
