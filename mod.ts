/**
 * Llama 3.2 Vision on WebGPU: torchtune's decoder, running as WGSL compute kernels in Deno.
 *
 * ```ts
 * import { loadCheckpoint } from "@llama-vision/webgpu";
 *
 * const model = await loadCheckpoint("path/to/checkpoint"); // config.json + model.safetensors
 * const logits = model.forward({ data: new Int32Array([1, 5, 9]), shape: [1, 3] });
 * const { data, shape } = await logits.read(); // Float32Array [1, 3, vocab_size]
 * ```
 *
 * @module
 */
export { llama3_2_vision_decoder } from "./src/models/llama3_2_vision/component_builders.ts";
export {
  type Llama3VisionDecoderArgs,
  type ResolvedDecoderArgs,
  resolveDecoderArgs,
  scale_hidden_dim_for_mlp,
} from "./src/models/llama3_2_vision/decoder_args.ts";
export {
  decoderArgsFromConfig,
  LLAMA3_2_VISION_11B_DECODER_ARGS,
  LLAMA3_2_VISION_90B_DECODER_ARGS,
  readConfig,
} from "./src/models/llama3_2_vision/config.ts";
export { loadCheckpoint, type LoadCheckpointOptions } from "./src/models/llama3_2_vision/load_checkpoint.ts";
export type { LoadProgress } from "./src/checkpoint/upload.ts";
export { type SetupCachesOptions, TransformerDecoder } from "./src/modules/transformer_decoder.ts";
export type { DecoderForwardOptions, HostMask } from "./src/modules/decoder_inputs.ts";
export {
  type ArrayFor,
  type DeviceDtype,
  DeviceTensor,
  type HostTensor,
  type TypedArray,
} from "./src/gpu/tensor.ts";
export { getGpu, Gpu, GpuError, type GpuLimits, type GpuOptions } from "./src/gpu/device.ts";
export { type AttentionMask, type FoldedRmsNorm, Recorder } from "./src/gpu/ops.ts";
export { BufferOwner, type WeightChunk, type WeightDtype, WeightStorage } from "./src/gpu/buffers.ts";
export type { BytesWriter } from "./src/gpu/upload_ring.ts";
export { Module, Parameter, StackedWeights } from "./src/modules/module.ts";
export { Linear } from "./src/modules/linear.ts";
export { RMSNorm } from "./src/modules/rms_norm.ts";
export { TanhGate } from "./src/modules/tanh_gate.ts";
export { FeedForward } from "./src/modules/feed_forward.ts";
export { KVCache } from "./src/modules/kv_cache.ts";
export { Llama3ScaledRoPE } from "./src/modules/position_embeddings.ts";
export { type AttentionCall, type AttentionInput, MultiHeadAttention } from "./src/modules/attention.ts";
export {
  type LayerCall,
  TransformerCrossAttentionLayer,
  TransformerSelfAttentionLayer,
} from "./src/modules/transformer.ts";
export { FusionEmbedding, FusionLayer } from "./src/modules/model_fusion.ts";
export {
  generate,
  type GenerateOptions,
  type GenerateStats,
  type GenerateStep,
  generateStream,
} from "./src/generation/generate.ts";
export { resolveSampling, type SamplingOptions } from "./src/generation/sampling.ts";
export { LlamaTokenizer } from "./src/tokenizer/tokenizer.ts";
export { type ChatMessage, loadChatTemplate, renderPrompt } from "./src/tokenizer/chat.ts";
export { TextStreamer } from "./src/tokenizer/streamer.ts";
export {
  downloadModel,
  type DownloadOptions,
  type DownloadProgress,
  type DownloadResult,
} from "./src/hub/download.ts";
export { resolveModelDir } from "./src/hub/resolve.ts";
export type { GpuTokens } from "./src/modules/transformer_decoder.ts";
export type { SampleSettings } from "./src/gpu/ops.ts";
export type { DecodeOptions, EncodeOptions } from "./src/tokenizer/tokenizer.ts";
export type { ContentPart, RenderedPrompt, RenderOptions } from "./src/tokenizer/chat.ts";
export { DeepFusionModel } from "./src/modules/deep_fusion_model.ts";
export { Llama3VisionEncoder, Llama3VisionProjectionHead } from "./src/modules/vision_encoder.ts";
export {
  TiledTokenPositionalEmbedding,
  TilePositionalEmbedding,
  TokenPositionalEmbedding,
  VisionTransformer,
  type VisionTransformerOutput,
} from "./src/modules/vision_transformer.ts";
export { LayerNorm } from "./src/modules/layer_norm.ts";
export type { Activation } from "./src/modules/feed_forward.ts";
export type { Norm } from "./src/modules/transformer.ts";
export type { GpuEncoderOutput, VisionEncoderInput } from "./src/modules/decoder_inputs.ts";
export { llama3_2_vision_encoder, llama3_mlp } from "./src/models/llama3_2_vision/component_builders.ts";
export { llama3_2_vision_11b, llama3_2_vision_90b } from "./src/models/llama3_2_vision/model_builders.ts";
export type { Llama3VisionModel } from "./src/models/llama3_2_vision/load_checkpoint.ts";
export {
  encoderArgsFromConfig,
  LLAMA3_2_VISION_11B_ENCODER_ARGS,
  LLAMA3_2_VISION_90B_ENCODER_ARGS,
  type Llama3VisionEncoderArgs,
  type ResolvedEncoderArgs,
  resolveEncoderArgs,
} from "./src/models/llama3_2_vision/encoder_args.ts";
export {
  CLIPImageTransform,
  type CLIPImageTransformOptions,
  type CLIPImageTransformOutput,
  find_supported_resolutions,
  get_canvas_best_fit,
  type RgbImage,
} from "./src/models/llama3_2_vision/image_transform.ts";
export {
  imageAttentionIntervals,
  visionCrossAttentionMask,
} from "./src/models/llama3_2_vision/cross_attention_mask.ts";
export { type PreparedImages, prepareImages } from "./src/models/llama3_2_vision/vision_inputs.ts";
export { decodeImage, loadImage } from "./src/image/decode.ts";
export type { RowRef } from "./src/gpu/ops_vision.ts";
export type { DecodedImage, DecodeImageOptions } from "./src/image/decode.ts";
export { ScratchPool } from "./src/gpu/buffers.ts";
export type { RetryOptions } from "./src/hub/transfer.ts";
