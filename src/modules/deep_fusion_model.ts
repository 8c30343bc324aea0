/** @module torchtune `DeepFusionModel` (`modules/model_fusion/_deep_fusion.py`). */
import type { BufferOwner } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import { submitRecording } from "../gpu/ops.ts";
import { DeviceTensor, type HostTensor } from "../gpu/tensor.ts";
import type { DecoderForwardOptions, VisionEncoderInput } from "./decoder_inputs.ts";
import { Module, type Parameter } from "./module.ts";
import type { SetupCachesOptions, TransformerDecoder } from "./transformer_decoder.ts";
import type { Llama3VisionEncoder } from "./vision_encoder.ts";

/**
 * Mirrors torchtune `DeepFusionModel(decoder, encoder)`: the vision encoder turns images into the
 * decoder's cross-attention input; `forward` runs the encoder only when images are given. State-dict
 * names are `decoder.*` and `encoder.*`.
 */
export class DeepFusionModel extends Module {
  /** `decoder`: the text decoder with its fusion layers. */
  readonly decoder: TransformerDecoder;
  /** `encoder`: the vision encoder. */
  readonly encoder: Llama3VisionEncoder;

  /** Same arguments as torchtune. */
  constructor(opts: { decoder: TransformerDecoder; encoder: Llama3VisionEncoder }) {
    super();
    this.decoder = opts.decoder;
    this.encoder = opts.encoder;
  }

  /** `decoder.*` then `encoder.*`. */
  override named_parameters(prefix = ""): [string, Parameter][] {
    return [
      ...this.decoder.named_parameters(`${prefix}decoder.`),
      ...this.encoder.named_parameters(`${prefix}encoder.`),
    ];
  }

  /** Binds both parts to a device (weights are allocated on the decoder's owner). */
  attach(gpu: Gpu): BufferOwner {
    return this.decoder.attach(gpu);
  }

  /** The device the weights live on. */
  get gpu(): Gpu {
    return this.decoder.gpu;
  }

  /** Runs the encoder alone: images → `[b, n_imgs·n_tiles·n_tok, E]` on the GPU. */
  encode(input: VisionEncoderInput): DeviceTensor {
    const gpu = this.gpu;
    const { buffer, shape } = submitRecording(
      gpu,
      this.decoder.scratch_pool,
      (rec) => this.encoder.record(rec, input),
    );
    return new DeviceTensor(gpu, buffer, shape, "f32");
  }

  /**
   * torchtune `DeepFusionModel.forward(tokens, mask=, encoder_input=, encoder_mask=, input_pos=)`:
   * float32 logits `[b, s, vocab_size]`. `encoder_input` is `{ images, aspect_ratio }` (the encoder runs
   * first, in the same submission), or an encoder output computed earlier (see {@link DeepFusionModel.encode}).
   */
  forward(
    tokens: HostTensor<Int32Array | ArrayLike<number>>,
    opts: DecoderForwardOptions = {},
  ): DeviceTensor {
    const gpu = this.gpu;
    const { logits, shape } = submitRecording(gpu, this.decoder.scratch_pool, (rec) => {
      const decoderOpts: DecoderForwardOptions = { ...opts };
      if (opts.encoder_input && "images" in opts.encoder_input) {
        const enc = this.encoder.record(rec, opts.encoder_input);
        rec.temps.adopt(enc.buffer);
        decoderOpts.encoder_input = enc;
      }
      return this.decoder.record(rec, tokens, decoderOpts);
    });
    return new DeviceTensor(gpu, logits, shape, "f32");
  }

  /** torchtune `setup_caches` (the decoder's caches). */
  setup_caches(
    batch_size: number,
    options: SetupCachesOptions | string = {},
    maybe: SetupCachesOptions = {},
  ): void {
    this.decoder.setup_caches(batch_size, options, maybe);
  }

  /** torchtune `caches_are_setup`. */
  caches_are_setup(): boolean {
    return this.decoder.caches_are_setup();
  }

  /** torchtune `caches_are_enabled`. */
  caches_are_enabled(): boolean {
    return this.decoder.caches_are_enabled();
  }

  /** torchtune `reset_caches`. */
  reset_caches(): void {
    this.decoder.reset_caches();
  }

  /** Frees the GPU memory of both parts. */
  destroy(): void {
    this.decoder.destroy();
  }

  /** `using model = await loadCheckpoint(dir)`. */
  [Symbol.dispose](): void {
    this.destroy();
  }
}
