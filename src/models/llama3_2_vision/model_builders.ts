/**
 * torchtune's `llama3_2_vision_11b` and `llama3_2_vision_90b` (`models/llama3_2_vision/_model_builders.py`):
 * the full fusion models, with empty weights (load them with `loadCheckpoint` or `load_state_dict`).
 *
 * @module
 */
import { DeepFusionModel } from "../../modules/deep_fusion_model.ts";
import { llama3_2_vision_decoder, llama3_2_vision_encoder } from "./component_builders.ts";
import { LLAMA3_2_VISION_11B_DECODER_ARGS, LLAMA3_2_VISION_90B_DECODER_ARGS } from "./config.ts";
import { LLAMA3_2_VISION_11B_ENCODER_ARGS, LLAMA3_2_VISION_90B_ENCODER_ARGS } from "./encoder_args.ts";

/** torchtune `llama3_2_vision_11b(image_size=560)`: `DeepFusionModel(decoder, encoder)` of the 11B model. */
export function llama3_2_vision_11b(opts: { image_size?: number } = {}): DeepFusionModel {
  return new DeepFusionModel({
    decoder: llama3_2_vision_decoder(LLAMA3_2_VISION_11B_DECODER_ARGS),
    encoder: llama3_2_vision_encoder({
      ...LLAMA3_2_VISION_11B_ENCODER_ARGS,
      tile_size: opts.image_size ?? 560,
    }),
  });
}

/** torchtune `llama3_2_vision_90b(image_size=560)`: `DeepFusionModel(decoder, encoder)` of the 90B model. */
export function llama3_2_vision_90b(opts: { image_size?: number } = {}): DeepFusionModel {
  return new DeepFusionModel({
    decoder: llama3_2_vision_decoder(LLAMA3_2_VISION_90B_DECODER_ARGS),
    encoder: llama3_2_vision_encoder({
      ...LLAMA3_2_VISION_90B_ENCODER_ARGS,
      tile_size: opts.image_size ?? 560,
    }),
  });
}
