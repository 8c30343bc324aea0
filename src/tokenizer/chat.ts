/**
 * Chat prompts for Llama 3.2 Vision: the checkpoint's Jinja chat template rendered with `@huggingface/jinja`,
 * or, when the checkpoint has none, torchtune's Llama 3 format built token by token.
 *
 * The Llama 3.2 Vision Instruct layout (one image, a system prompt, generation prompt):
 *
 * ```text
 * <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>
 * <|start_header_id|>user<|end_header_id|>\n\n<|image|>{question}<|eot_id|>
 * <|start_header_id|>assistant<|end_header_id|>\n\n
 * ```
 *
 * (without the line breaks). Templates emit `<|begin_of_text|>` themselves, so their output is encoded
 * without adding special tokens: the prompt holds exactly one.
 *
 * @module
 */

import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import type { LlamaTokenizer } from "./tokenizer.ts";

/** One part of a message: text, or an image (which becomes one `<|image|>` token). */
export type ContentPart = { type: "text"; text: string } | { type: "image" };

/** A chat message. Plain-string content is the same as one text part. */
export interface ChatMessage {
  /** Who speaks; `ipython` is a tool's output. */
  role: "system" | "user" | "assistant" | "ipython";
  /** The text, or the text and image parts in order. */
  content: string | ContentPart[];
}

/** Options of {@linkcode renderPrompt}. */
export interface RenderOptions {
  /**
   * The Jinja chat template. Default (`undefined`): the tokenizer's own (`tok.chat_template`). `null`, or no
   * template anywhere: torchtune's Llama 3 format.
   */
  chat_template?: string | null;
  /** `date_string` for templates that print today's date (the Hugging Face Llama 3.x templates do). */
  date_string?: string;
  /** End with an open assistant header for the model to complete. Default `true`. */
  add_generation_prompt?: boolean;
}

/** A rendered prompt. */
export interface RenderedPrompt {
  /** The template's output, or `null` for the token-built torchtune format. */
  text: string | null;
  /** The prompt's token ids, starting with one `<|begin_of_text|>`. */
  ids: number[];
}

/**
 * A chat template for the Llama 3.2 Vision Instruct layout, written from torchtune's `llama3_tokenizer`
 * format: `<|begin_of_text|>`, then per message `<|start_header_id|>{role}<|end_header_id|>\n\n`, its parts in
 * order (text stripped of surrounding whitespace, an image as `<|image|>`) and `<|eot_id|>`; then the open assistant header when `add_generation_prompt`. There is no
 * default system prompt. The test fixtures and the bundled tiny tokenizer use it; for the same messages it
 * gives the same ids as `renderPrompt` without a template.
 */
export const LLAMA3_2_VISION_CHAT_TEMPLATE: string = String.raw`{{- bos_token }}
{%- for message in messages %}
    {%- if message['role'] not in ['system', 'user', 'assistant', 'ipython'] %}
        {{- raise_exception('unknown role: ' + message['role']) }}
    {%- endif %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}
    {%- if message['content'] is string %}
        {{- message['content'] | trim }}
    {%- else %}
        {%- for part in message['content'] %}
            {%- if part['type'] == 'image' %}
                {{- '<|image|>' }}
            {%- elif part['type'] == 'text' %}
                {{- part['text'] | trim }}
            {%- endif %}
        {%- endfor %}
    {%- endif %}
    {{- '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
`;

const ROLES = new Set(["system", "user", "assistant", "ipython"]);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The template of a `chat_template` entry (of `tokenizer_config.json` or `chat_template.json`): a string, or
 * a list of `{ name, template }` of which the one named `"default"` is used. `null` when absent or empty.
 */
export function chatTemplateFromConfig(value: unknown, source: string): string | null {
  if (value === undefined || value === null || value === "") return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    if (!value.every((t) => isObject(t) && typeof t.name === "string" && typeof t.template === "string")) {
      throw new Error(`${source}: "chat_template" must be a string or a list of {name, template}`);
    }
    const named = value as { name: string; template: string }[];
    const found = named.find((t) => t.name === "default");
    if (!found) {
      const names = named.map((t) => JSON.stringify(t.name)).join(", ");
      throw new Error(
        `${source}: "chat_template" has no template named "default" (it has ${names || "none"})`,
      );
    }
    return found.template === "" ? null : found.template;
  }
  throw new Error(`${source}: "chat_template" must be a string or a list of {name, template}`);
}

async function readOptional(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new Error(`${path}: cannot read: ${e instanceof Error ? e.message : String(e)}`);
  }
}

async function readChatTemplateEntry(path: string): Promise<string | null> {
  const text = await readOptional(path);
  if (text === null) return null;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: invalid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!isObject(json)) throw new Error(`${path}: must be a JSON object`);
  return chatTemplateFromConfig(json.chat_template, path);
}

/**
 * The chat template of a checkpoint folder, looked up as `transformers` does: `chat_template.jinja`, else
 * `tokenizer_config.json`'s `chat_template`, else `chat_template.json` (the processor's). `null` when there is
 * none (then {@linkcode renderPrompt} uses torchtune's format).
 */
export async function loadChatTemplate(dir: string): Promise<string | null> {
  const jinja = await readOptional(join(dir, "chat_template.jinja"));
  if (jinja !== null && jinja !== "") return jinja;
  return await readChatTemplateEntry(join(dir, "tokenizer_config.json")) ??
    await readChatTemplateEntry(join(dir, "chat_template.json"));
}

/** Messages with every content as a list of parts, checked. */
function normalizeMessages(messages: readonly ChatMessage[]): { role: string; content: ContentPart[] }[] {
  if (!Array.isArray(messages)) throw new TypeError("renderPrompt: messages must be an array");
  return messages.map((message: unknown, i) => {
    const m = isObject(message) ? message : {};
    const role = m.role;
    if (typeof role !== "string" || !ROLES.has(role)) {
      throw new Error(
        `renderPrompt: message ${i} has role ${JSON.stringify(role)}, expected one of ${
          [...ROLES].join(", ")
        }`,
      );
    }
    const raw = typeof m.content === "string" ? [{ type: "text", text: m.content }] : m.content;
    if (!Array.isArray(raw)) {
      throw new Error(`renderPrompt: message ${i}: content must be a string or a list of parts`);
    }
    const content = raw.map((part: unknown, j): ContentPart => {
      const ok = isObject(part) &&
        ((part.type === "text" && typeof part.text === "string") || part.type === "image");
      if (!ok) {
        throw new Error(
          `renderPrompt: message ${i}, part ${j}: expected {type: "text", text} or {type: "image"}, got ${
            JSON.stringify(part)
          }`,
        );
      }
      return { ...part } as ContentPart;
    });
    return { role, content };
  });
}

function requireId(tok: LlamaTokenizer, token: string): number {
  const id = tok.token_to_id(token);
  if (id === undefined) {
    throw new Error(`renderPrompt: the tokenizer has no ${token} token, needed by the Llama 3 prompt format`);
  }
  return id;
}

/**
 * torchtune's `Llama3Tokenizer.tokenize_messages` for inference, token by token. torchtune puts
 * `<|python_tag|>` before a body only for `Message(ipython=True)` (an assistant's tool call), which a
 * `ChatMessage` cannot express; an `ipython`-role message (a tool's output) is a plain message, as in the
 * Hugging Face Llama 3.x templates.
 */
function torchtunePrompt(
  tok: LlamaTokenizer,
  messages: { role: string; content: ContentPart[] }[],
  add_generation_prompt: boolean,
): number[] {
  const start = requireId(tok, "<|start_header_id|>");
  const end = requireId(tok, "<|end_header_id|>");
  const eot = requireId(tok, "<|eot_id|>");
  const plain = (text: string): number[] => tok.encode(text, { add_special_tokens: false });
  const header = (role: string): number[] => [start, ...plain(role), end, ...plain("\n\n")];
  const ids: number[] = tok.bos_id !== null ? [tok.bos_id] : [];
  for (const m of messages) {
    ids.push(...header(m.role));
    for (const part of m.content) {
      if (part.type === "image") ids.push(tok.image_id!);
      else ids.push(...plain(part.text.trim()));
    }
    ids.push(eot);
  }
  if (add_generation_prompt) ids.push(...header("assistant"));
  return ids;
}

/**
 * The prompt for a chat.
 *
 * With a chat template (`opts.chat_template`, by default the tokenizer's own) it is rendered with the
 * messages (content as parts; an image is `{ type: "image" }`), `bos_token`, `eos_token`,
 * `add_generation_prompt` and `date_string`, and `ids` is its encoding without added special tokens (the
 * template writes `<|begin_of_text|>`). Without one, `ids` follows torchtune's Llama 3 format (text parts
 * stripped and encoded one by one, one `<|begin_of_text|>`, no end token after the generation prompt) and
 * `text` is `null`.
 */
export function renderPrompt(
  tok: LlamaTokenizer,
  messages: ChatMessage[],
  opts: RenderOptions = {},
): RenderedPrompt {
  const normalized = normalizeMessages(messages);
  const add_generation_prompt = opts.add_generation_prompt ?? true;
  if (tok.image_id === null && normalized.some((m) => m.content.some((p) => p.type === "image"))) {
    throw new Error("renderPrompt: a message has an image but the tokenizer has no <|image|> token");
  }
  const template = opts.chat_template === undefined ? tok.chat_template : opts.chat_template;
  if (template === null || template === "") {
    return { text: null, ids: torchtunePrompt(tok, normalized, add_generation_prompt) };
  }
  let compiled: Template;
  try {
    compiled = new Template(template);
  } catch (e) {
    throw new Error(`chat template: cannot parse: ${e instanceof Error ? e.message : String(e)}`);
  }
  const context: Record<string, unknown> = {
    messages: normalized,
    add_generation_prompt,
    bos_token: tok.bos_token ?? "",
    eos_token: tok.eos_token ?? "",
  };
  if (opts.date_string !== undefined) context.date_string = opts.date_string;
  let text: string;
  try {
    text = compiled.render(context);
  } catch (e) {
    throw new Error(`chat template: cannot render: ${e instanceof Error ? e.message : String(e)}`);
  }
  return { text, ids: tok.encode(text, { add_special_tokens: false }) };
}
