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
    this.#storage = new WeightStorage(owner, this.shape, this.alwaysF32 ? "f32" : dtype, label);
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
