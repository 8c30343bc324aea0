/**
 * `generate`: resolve the model (local folder or Hub repo), build the prompt (chat template or raw),
 * stream the generated text to stdout, and print progress and statistics to stderr.
 *
 * @module
 */
import { join } from "node:path";
import { type GenerateStats, generateStream } from "../generation/generate.ts";
import { loadCheckpoint } from "../models/llama3_2_vision/load_checkpoint.ts";
import type { LoadDtype } from "../checkpoint/quantize.ts";
import { visionCrossAttentionMask } from "../models/llama3_2_vision/cross_attention_mask.ts";
import { prepareImages } from "../models/llama3_2_vision/vision_inputs.ts";
import { DeepFusionModel } from "../modules/deep_fusion_model.ts";
import type { HostMask, VisionEncoderInput } from "../modules/decoder_inputs.ts";
import { type DecodedImage, loadImage } from "../image/decode.ts";
import { resolveModelDir } from "../hub/resolve.ts";
import { progressReporter } from "../hub/progress.ts";
import { type ChatMessage, loadChatTemplate, renderPrompt } from "../tokenizer/chat.ts";
import { TextStreamer } from "../tokenizer/streamer.ts";
import { LlamaTokenizer } from "../tokenizer/tokenizer.ts";
import { BUNDLED_MODEL, isBundledModel } from "./bundled.ts";
import { loadProgress } from "./progress.ts";

const DEFAULT_PROMPT = "Describe a llama in one sentence.";

/** Options of the `generate` command (see `main.ts generate --help`). */
export interface GenerateCommandOptions {
  model: string;
  revision?: string;
  prompt?: string;
  system?: string;
  chat: boolean;
  maxNewTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  stop: string[];
  tokenIds?: number[];
  ids: boolean;
  images: string[];
  /** What weights are stored as on the GPU (`loadCheckpoint`'s `dtype`; default "auto"). */
  dtype?: LoadDtype;
}

interface GenerationDefaults {
  temperature?: number;
  top_k?: number;
  top_p?: number;
  max_new_tokens?: number;
  stop_tokens: number[];
}

/** Defaults from `generation_config.json` (HF names), if the checkpoint has one. */
async function generationDefaults(dir: string): Promise<GenerationDefaults> {
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(await Deno.readTextFile(join(dir, "generation_config.json")));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { stop_tokens: [] };
    throw new Error(`${join(dir, "generation_config.json")}: ${(e as Error).message}`);
  }
  const num = (k: string) => typeof cfg[k] === "number" ? cfg[k] as number : undefined;
  const eos = cfg.eos_token_id;
  const greedy = cfg.do_sample === false;
  return {
    temperature: greedy ? 0 : num("temperature"),
    top_k: greedy ? undefined : num("top_k"),
    top_p: greedy ? undefined : num("top_p"),
    max_new_tokens: num("max_new_tokens"),
    stop_tokens: Array.isArray(eos)
      ? eos.filter((x) => typeof x === "number")
      : typeof eos === "number"
      ? [eos]
      : [],
  };
}

async function readStdin(): Promise<string> {
  if (Deno.stdin.isTerminal()) return "";
  return new TextDecoder().decode(await new Response(Deno.stdin.readable).arrayBuffer());
}

/** Runs `generate`; returns the generated token ids. */
export async function generateCommand(opts: GenerateCommandOptions): Promise<number[]> {
  const encoder = new TextEncoder();
  const t0 = performance.now();
  const dir = isBundledModel(opts.model)
    ? BUNDLED_MODEL
    : await resolveModelDir(opts.model, { revision: opts.revision, onProgress: progressReporter() });
  if (isBundledModel(opts.model)) {
    console.error("note: using the bundled tiny random model: the pipeline is real, the text is noise");
  }
  const defaults = await generationDefaults(dir);
  let tokenizer: LlamaTokenizer | null = null;
  let promptIds: number[];
  if (opts.tokenIds) {
    promptIds = opts.tokenIds;
  } else {
    tokenizer = await LlamaTokenizer.load(dir);
    let text = opts.prompt ?? (await readStdin()).trimEnd();
    if (opts.prompt === undefined && !text) {
      text = DEFAULT_PROMPT;
      console.error(`note: no --prompt and nothing on stdin; using "${text}"`);
    }
    if (!text.trim()) throw new Error("empty prompt: pass --prompt <text> or pipe the prompt on stdin");
    if (opts.chat) {
      const messages: ChatMessage[] = [];
      if (opts.system) messages.push({ role: "system", content: [{ type: "text", text: opts.system }] });
      // Images come first in the user turn, as in Meta's and Hugging Face's examples.
      messages.push({
        role: "user",
        content: [...opts.images.map(() => ({ type: "image" as const })), { type: "text", text }],
      });
      promptIds = renderPrompt(tokenizer, messages, {
        chat_template: await loadChatTemplate(dir),
        add_generation_prompt: true,
      }).ids;
    } else {
      promptIds = tokenizer.encode(text, { add_special_tokens: true });
    }
  }
  // Decode the images before the (long) weight upload, so a bad file fails fast.
  const decoded: DecodedImage[] = [];
  for (const path of opts.images) decoded.push(await loadImage(path));
  const model = await loadCheckpoint(dir, { onProgress: loadProgress(), dtype: opts.dtype });
  let encoderInput: VisionEncoderInput | null = null;
  try {
    const decoder = model.decoder;
    let encoderMask: HostMask | null = null;
    if (decoded.length > 0) {
      if (!(model instanceof DeepFusionModel)) {
        throw new Error(
          `${dir} has no vision weights (vision_model.*): --image needs a Llama 3.2 Vision checkpoint`,
        );
      }
      const clip = model.encoder.clip;
      const { encoder_input, n_tiles } = prepareImages(decoded, {
        tile_size: clip.tile_size,
        max_num_tiles: clip.max_num_tiles,
      });
      const imageId = tokenizer?.image_id ?? decoder.tok_embeddings.vocab_size;
      encoderMask = visionCrossAttentionMask(promptIds, imageId, n_tiles, clip.max_num_tiles, clip.n_tok);
      encoderInput = encoder_input;
    }
    const loadSecs = (performance.now() - t0) / 1000;
    const budget = decoder.max_seq_len - promptIds.length;
    if (budget < 1) {
      throw new Error(
        `the prompt has ${promptIds.length} tokens but the model's context is ${decoder.max_seq_len}; shorten it`,
      );
    }
    const maxNew = opts.maxNewTokens ?? Math.min(defaults.max_new_tokens ?? 256, budget);
    if (maxNew > budget) {
      throw new Error(
        `--max-new-tokens ${maxNew} does not fit: the prompt has ${promptIds.length} tokens and the context is ` +
          `${decoder.max_seq_len}; use at most ${budget}`,
      );
    }
    const stopTokens = [...new Set([...defaults.stop_tokens, ...(tokenizer?.stop_tokens ?? [])])];
    const streamer = tokenizer ? new TextStreamer(tokenizer, { skip_special_tokens: true }) : null;
    const stats = {} as GenerateStats;
    const out: number[] = [];
    let text = "";
    let printed = 0;
    // Why generation ended, for the summary line: a short answer should not look like a bug.
    let ended = "--max-new-tokens reached";
    const write = async (s: string) => {
      if (s) await Deno.stdout.write(encoder.encode(s));
    };
    steps: for await (
      const step of generateStream(model, { data: new Int32Array(promptIds), shape: [1, promptIds.length] }, {
        max_new_tokens: maxNew,
        encoder_input: encoderInput,
        encoder_mask: encoderMask,
        temperature: opts.temperature ?? defaults.temperature,
        top_k: opts.topK ?? defaults.top_k,
        top_p: opts.topP ?? defaults.top_p,
        seed: opts.seed,
        stop_tokens: stopTokens,
      }, stats)
    ) {
      const id = step.tokens[0];
      const isStop = stopTokens.includes(id);
      if (opts.ids || !streamer) {
        out.push(id);
        await write(`${out.length > 1 ? " " : ""}${id}`);
        if (isStop) {
          ended = `stop token ${id}`;
          break;
        }
        continue;
      }
      if (isStop) {
        ended = `stop token ${id}`;
        break;
      }
      out.push(id);
      text += streamer.push(id);
      for (const stop of opts.stop) {
        const at = text.indexOf(stop);
        if (at >= 0) {
          await write(text.slice(printed, at));
          printed = text.length;
          ended = `--stop ${JSON.stringify(stop)}`;
          break steps;
        }
      }
      // Hold back what could still become the start of a stop string.
      const hold = opts.stop.reduce((m, s) => Math.max(m, s.length - 1), 0);
      const safe = Math.max(printed, text.length - hold);
      await write(text.slice(printed, safe));
      printed = safe;
    }
    if (streamer && !opts.ids) {
      text += streamer.flush();
      const cut = opts.stop.map((s) => text.indexOf(s)).filter((i) => i >= 0);
      await write(text.slice(printed, cut.length ? Math.min(...cut) : text.length));
    }
    await write("\n");
    const promptRate = stats.prompt_tokens / (stats.prefill_ms / 1000);
    // The first token comes with the prefill; a rate needs at least two.
    const n = stats.generated_tokens;
    const genRate = n > 1 ? ` at ${((n - 1) / (stats.decode_ms / 1000)).toFixed(1)} tokens/s` : "";
    console.error(
      `load ${loadSecs.toFixed(2)} s · prompt ${stats.prompt_tokens} tokens at ${
        promptRate.toFixed(1)
      } tokens/s · generated ${n} token${n === 1 ? "" : "s"}${genRate} · ended: ${ended}`,
    );
    return out;
  } finally {
    model.destroy();
  }
}
