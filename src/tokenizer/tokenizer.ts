/**
 * The Llama 3 tokenizer, read from a Hugging Face checkpoint folder (`tokenizer.json`, and when present
 * `tokenizer_config.json`, `generation_config.json` and a chat template) and run with the pure JavaScript
 * `@huggingface/tokenizers`.
 *
 * Besides encoding and decoding it resolves what generation needs: the beginning-of-text id, the `<|image|>`
 * id (the fusion token of Llama 3.2 Vision, one past the text vocabulary) and the stop tokens (for the
 * Instruct models `<|end_of_text|>` 128001, `<|eom_id|>` 128008 and `<|eot_id|>` 128009).
 *
 * @module
 */

import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { chatTemplateFromConfig, loadChatTemplate } from "./chat.ts";

/** Tokens that end a turn in every Llama 3 checkpoint that has them; they always count as stop tokens. */
const LLAMA3_STOP_TOKENS = ["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"] as const;

/** A parsed JSON object. */
type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Token ids must be below this (2^24, over 100× Llama 3's vocabulary). */
const MAX_TOKEN_ID = 1 << 24;

/** Reads and parses a JSON file; `null` when it does not exist and `optional` is set. */
async function readJson(path: string, optional: boolean): Promise<unknown> {
  let text: string;
  try {
    // Fatal decoding: invalid UTF-8 would otherwise become U+FFFD and silently change tokens.
    text = new TextDecoder("utf-8", { fatal: true }).decode(await Deno.readFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      if (optional) return null;
      throw new Error(`${path}: file not found (a tokenizer folder must contain tokenizer.json)`);
    }
    throw new Error(`${path}: cannot read: ${message(e)}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: invalid JSON: ${message(e)}`);
  }
}

/** The text of a special-token entry of `tokenizer_config.json`: a string or an `AddedToken` object. */
function tokenContent(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (isObject(value) && typeof value.content === "string") return value.content;
  return null;
}

/** `eos_token_id` of `generation_config.json`: a number, a list of numbers, or absent. */
function tokenIdList(value: unknown, source: string, key: string): number[] {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  for (const id of list) {
    if (!Number.isInteger(id) || id < 0) {
      throw new Error(
        `${source}: "${key}" must be a token id or a list of token ids, got ${JSON.stringify(value)}`,
      );
    }
  }
  return list as number[];
}

/** Options of {@linkcode LlamaTokenizer.encode}. */
export interface EncodeOptions {
  /** Add the post-processor's special tokens (`<|begin_of_text|>` for Llama 3). Default `true`. */
  add_special_tokens?: boolean;
}

/** Options of {@linkcode LlamaTokenizer.decode}. */
export interface DecodeOptions {
  /** Drop special tokens (`<|eot_id|>`, `<|image|>`, headers' markers, …) from the text. Default `false`. */
  skip_special_tokens?: boolean;
}

/** The parsed files {@linkcode LlamaTokenizer.fromJSON} builds a tokenizer from. */
export interface TokenizerFiles {
  /** The parsed `tokenizer.json`. */
  tokenizer: unknown;
  /** The parsed `tokenizer_config.json` (special token names, `chat_template`). */
  tokenizer_config?: unknown;
  /** The parsed `generation_config.json` (`bos_token_id`, `eos_token_id`). */
  generation_config?: unknown;
  /** A chat template; default: `tokenizer_config.chat_template`. `null`: none. */
  chat_template?: string | null;
  /** The folder the files came from, for error messages. */
  dir?: string;
}

/**
 * A Llama 3 byte-level BPE tokenizer with the ids generation needs.
 *
 * ```ts
 * const tok = await LlamaTokenizer.load("path/to/Llama-3.2-11B-Vision-Instruct");
 * tok.encode("Hello world! <|image|>"); // [128000, 9906, 1917, 0, 220, 128256]
 * tok.decode([9906, 1917]); // "Hello world"
 * tok.stop_tokens; // [128001, 128008, 128009]
 * ```
 */
export class LlamaTokenizer {
  /** Stop tokens for generation, ascending, without duplicates. */
  readonly stop_tokens: number[];
  /** Id of the beginning-of-text token (`<|begin_of_text|>`), or `null` when the tokenizer has none. */
  readonly bos_id: number | null;
  /** Id of `<|image|>` (128256 for Llama 3.2 Vision), or `null` when the tokenizer has none. */
  readonly image_id: number | null;
  /** Number of token ids: the largest id, added tokens included, plus one (128257 for Llama 3.2 Vision). */
  readonly vocab_size: number;
  /** The beginning-of-text token's text (the `bos_token` chat templates see), or `null`. */
  readonly bos_token: string | null;
  /** The end-of-sequence token's text from `tokenizer_config.json` (`eos_token`), or `null`. */
  readonly eos_token: string | null;
  /** The chat template found beside the tokenizer (see `loadChatTemplate`), or `null`. */
  readonly chat_template: string | null;
  readonly #tokenizer: Tokenizer;
  readonly #special: Set<number>;
  readonly #ids: Map<string, number>;
  readonly #tokens: Map<number, string>;
  readonly #config: JsonObject;

  private constructor(files: TokenizerFiles) {
    const where = (name: string): string => files.dir !== undefined ? join(files.dir, name) : name;
    const source = where("tokenizer.json");
    const json = files.tokenizer;
    if (!isObject(json) || !isObject(json.model)) {
      throw new Error(`${source}: not a Hugging Face tokenizer.json (no "model" object)`);
    }
    const model = json.model;
    if (!isObject(model.vocab)) {
      throw new Error(`${source}: "model.vocab" must be an object mapping tokens to ids`);
    }
    const added = json.added_tokens ?? [];
    if (!Array.isArray(added) || !added.every((t) => isObject(t) && typeof t.content === "string")) {
      throw new Error(`${source}: "added_tokens" must be a list of {id, content, ...} objects`);
    }
    const config = files.tokenizer_config ?? {};
    if (!isObject(config)) throw new Error(`${where("tokenizer_config.json")}: must be a JSON object`);
    const generation = files.generation_config ?? {};
    if (!isObject(generation)) throw new Error(`${where("generation_config.json")}: must be a JSON object`);

    this.#ids = new Map();
    this.#tokens = new Map();
    this.#special = new Set();
    const register = (token: string, id: unknown): void => {
      if (!Number.isInteger(id) || (id as number) < 0) {
        throw new Error(`${source}: token ${JSON.stringify(token)} has an invalid id ${JSON.stringify(id)}`);
      }
      // vocab_size is the largest id + 1 and sizes tables: a corrupt id must not become a huge vocabulary.
      if ((id as number) >= MAX_TOKEN_ID) {
        throw new Error(
          `${source}: token ${JSON.stringify(token)} has id ${id}, above ${
            MAX_TOKEN_ID - 1
          }, the largest this ` +
            `tokenizer accepts (Llama 3 has 128256 tokens): the file is corrupt`,
        );
      }
      this.#ids.set(token, id as number);
      this.#tokens.set(id as number, token);
    };
    for (const [token, id] of Object.entries(model.vocab)) register(token, id);
    for (const t of added as JsonObject[]) {
      register(t.content as string, t.id);
      if (t.special === true) this.#special.add(t.id as number);
    }

    try {
      this.#tokenizer = new Tokenizer(json, { ...config, clean_up_tokenization_spaces: false });
    } catch (e) {
      throw new Error(`${source}: cannot build the tokenizer: ${message(e)}`);
    }
    this.#config = config;
    let largest = -1;
    for (const id of this.#tokens.keys()) largest = Math.max(largest, id);
    this.vocab_size = largest + 1;

    this.bos_token = tokenContent(config.bos_token) ??
      (this.#ids.has("<|begin_of_text|>") ? "<|begin_of_text|>" : null);
    this.eos_token = tokenContent(config.eos_token);
    this.bos_id = this.bos_token !== null ? this.#ids.get(this.bos_token) ?? null : null;
    this.image_id = this.#ids.get("<|image|>") ?? null;

    const stops = new Set(
      tokenIdList(generation.eos_token_id, where("generation_config.json"), "eos_token_id"),
    );
    if (this.eos_token !== null && this.#ids.has(this.eos_token)) stops.add(this.#ids.get(this.eos_token)!);
    for (const name of LLAMA3_STOP_TOKENS) {
      const id = this.#ids.get(name);
      if (id !== undefined) stops.add(id);
    }
    this.stop_tokens = [...stops].sort((a, b) => a - b);

    this.chat_template = files.chat_template !== undefined
      ? files.chat_template
      : chatTemplateFromConfig(config.chat_template, where("tokenizer_config.json"));
  }

  /**
   * Reads a tokenizer folder: `tokenizer.json` (required), `tokenizer_config.json`, `generation_config.json`
   * and the chat template (`tokenizer_config.json`'s `chat_template`, `chat_template.jinja` or
   * `chat_template.json`), all optional. Errors name the file at fault.
   */
  static async load(dir: string): Promise<LlamaTokenizer> {
    const tokenizer = await readJson(join(dir, "tokenizer.json"), false);
    const tokenizer_config = await readJson(join(dir, "tokenizer_config.json"), true);
    const generation_config = await readJson(join(dir, "generation_config.json"), true);
    const chat_template = await loadChatTemplate(dir);
    return new LlamaTokenizer({
      tokenizer,
      tokenizer_config: tokenizer_config ?? {},
      generation_config: generation_config ?? {},
      chat_template,
      dir,
    });
  }

  /** Builds a tokenizer from already parsed files (no file system access). */
  static fromJSON(files: TokenizerFiles): LlamaTokenizer {
    return new LlamaTokenizer(files);
  }

  /**
   * Token ids of `text`. Special tokens written in the text (`<|image|>`, `<|eot_id|>`, …) become their ids;
   * `add_special_tokens` (default `true`) prepends `<|begin_of_text|>`.
   */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== "string") throw new TypeError(`encode: text must be a string, got ${typeof text}`);
    if (text === "" && opts.add_special_tokens === false) return [];
    return this.#tokenizer.encode(text, { add_special_tokens: opts.add_special_tokens ?? true }).ids;
  }

  /** The text of `ids` (byte-level decoding; an incomplete UTF-8 sequence becomes U+FFFD). */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    if (ids.length === 0) return "";
    for (const id of ids) {
      if (!this.#tokens.has(id)) {
        throw new RangeError(`decode: ${id} is not a token id (vocabulary of ${this.vocab_size} ids)`);
      }
    }
    return this.#tokenizer.decode(ids as number[], {
      skip_special_tokens: opts.skip_special_tokens ?? false,
      clean_up_tokenization_spaces: false,
    });
  }

  /** The id of a token (its vocabulary string, e.g. `"<|eot_id|>"` or `"Ġworld"`), or `undefined`. */
  token_to_id(token: string): number | undefined {
    return this.#ids.get(token);
  }

  /** The vocabulary string of an id, or `undefined`. */
  id_to_token(id: number): string | undefined {
    return this.#tokens.get(id);
  }

  /** Whether `id` is a special token (an added token marked `special`). */
  is_special(id: number): boolean {
    return this.#special.has(id);
  }

  /** The parsed `tokenizer_config.json` (an empty object when there was none). */
  get config(): Readonly<Record<string, unknown>> {
    return this.#config;
  }
}
