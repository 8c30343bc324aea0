/**
 * Parameters and the module tree, mirroring `torch.nn.Module` just enough to give every weight its
 * torchtune state-dict name.
 *
 * @module
 */
import { GpuError } from "../gpu/device.ts";
import type { BufferOwner, WeightDtype, WeightStorage as Storage } from "../gpu/buffers.ts";
import { WeightStorage } from "../gpu/buffers.ts";

/** A weight of known shape whose GPU storage is filled by a loader. */
export class Parameter {
  /** torchtune shape, e.g. `[out, in]` for a linear weight. */
  readonly shape: number[];
  /** Small vectors (norm scales, gates) are always kept as f32 so kernels bind them as `array<f32>`. */
  readonly alwaysF32: boolean;
  #storage: Storage | null = null;
  /** The weights this one shares a buffer with (see {@link StackedWeights}), if any. */
  stack: StackedWeights | null = null;

  /**
   * Declares a parameter; it has no storage until {@link Parameter.allocate}.
   *
   * @param shape torchtune shape
   * @param alwaysF32 keep as f32 whatever the checkpoint dtype
   */
  constructor(shape: number[], alwaysF32 = false) {
    this.shape = shape;
    this.alwaysF32 = alwaysF32;
  }

  /** Allocates storage for this parameter in `dtype` (f32 for vectors) and returns it. */
  allocate(owner: BufferOwner, dtype: WeightDtype, label: string): Storage {
    const stacked = this.stack?.allocate(this, owner, dtype, label);
    this.#storage = stacked ?? new WeightStorage(owner, this.shape, this.alwaysF32 ? "f32" : dtype, label);
    return this.#storage;
  }

  /** The storage, or null before loading. */
  get storageOrNull(): Storage | null {
    return this.#storage;
  }

  /** Whether storage was allocated. */
  get loaded(): boolean {
    return this.#storage !== null;
  }

  /** The GPU storage; throws if the weights were never loaded. */
  get storage(): Storage {
    if (!this.#storage) {
      throw new GpuError(
        "the model has no weights yet: build it with `await loadCheckpoint(dir)` or call `await model.load_state_dict(...)`",
      );
    }
    return this.#storage;
  }

  /** The single buffer of a small (f32) parameter. */
  get buffer(): GPUBuffer {
    return this.storage.chunks[0].buffer;
  }
}

/**
 * Weights `[n_i, cols]` multiplied by the same input (q, k and v of self-attention; w1 and w3 of a
 * SwiGLU MLP) stored stacked in one weight `[Σ n_i, cols]`, so that a decode step computes them in one
 * dispatch (`linearSplit`). Each member stays a {@link Parameter} with its own torchtune name, shape and
 * storage (a {@link WeightStorage.slice} of the stack), so loading and state dicts do not change.
 *
 * The stack is allocated when its first member is, in that member's dtype; a member allocated in
 * another dtype, or out of order, gets storage of its own and {@link StackedWeights.storage} is null
 * (the module then multiplies member by member).
 */
export class StackedWeights {
  /** The members, in stacking order. */
  readonly members: Parameter[];
  #stack: Storage | null = null;
  #slices: Storage[] = [];

  /** Stacks `members` (2-D weights with equal rows lengths); sets each member's `stack`. */
  constructor(members: Parameter[]) {
    const cols = members[0].shape[1];
    if (members.some((p) => p.shape.length !== 2 || p.shape[1] !== cols || p.alwaysF32)) {
      throw new GpuError("internal: only 2-D weights of equal row length can be stacked");
    }
    this.members = members;
    for (const p of members) p.stack = this;
  }

  /** Storage for member `p` (a slice of the stack), or null when `p` needs storage of its own. */
  allocate(p: Parameter, owner: BufferOwner, dtype: WeightDtype, label: string): Storage | null {
    const i = this.members.indexOf(p);
    if (i === 0) {
      const rows = this.members.reduce((a, m) => a + m.shape[0], 0);
      this.#stack = new WeightStorage(owner, [rows, p.shape[1]], dtype, `${label} (stacked)`);
      this.#slices = [];
    }
    if (!this.#stack || this.#stack.dtype !== dtype || this.#slices.length !== i) return null;
    const row0 = this.members.slice(0, i).reduce((a, m) => a + m.shape[0], 0);
    const slice = this.#stack.slice(row0, p.shape[0], p.shape);
    this.#slices.push(slice);
    return slice;
  }

  /** The stacked weight when every member currently lives in it, else null. */
  get storage(): Storage | null {
    if (!this.#stack || this.#slices.length !== this.members.length) return null;
    return this.members.every((m, i) => m.storageOrNull === this.#slices[i]) ? this.#stack : null;
  }
}

/** A node of the module tree: own parameters plus named children (torchtune attribute names). */
export abstract class Module {
  /** Own parameters by torchtune attribute name. */
  protected params(): Record<string, Parameter> {
    return {};
  }

  /** Child modules by torchtune attribute name (null children are skipped). */
  protected children(): Record<string, Module | null> {
    return {};
  }

  /** Every parameter with its torchtune state-dict name, like `nn.Module.named_parameters()`. */
  named_parameters(prefix = ""): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    for (const [name, p] of Object.entries(this.params())) out.push([prefix + name, p]);
    for (const [name, child] of Object.entries(this.children())) {
      if (child) out.push(...child.named_parameters(`${prefix}${name}.`));
    }
    return out;
  }
}
