/**
 * Streaming detokenization: text for generated ids as they come, emitting only complete characters.
 *
 * A byte-level BPE token can end in the middle of a multi-byte UTF-8 character (an emoji is often split over
 * three tokens). Decoding token by token would print U+FFFD replacement characters; the streamer instead
 * decodes the ids accumulated since the last emitted character boundary and holds back a trailing U+FFFD
 * until the following tokens complete it. The concatenation of everything `push` and `flush` return is the
 * decoding of all the ids at once.
 *
 * @module
 */

import type { LlamaTokenizer } from "./tokenizer.ts";

/** Options of {@linkcode TextStreamer}. */
export interface TextStreamerOptions {
  /** Leave special tokens (`<|eot_id|>`, …) out of the text. Default `false`. */
  skip_special_tokens?: boolean;
}

/**
 * A UTF-8-safe streaming decoder.
 *
 * ```ts
 * const streamer = new TextStreamer(tok, { skip_special_tokens: true });
 * for (const id of generatedIds) Deno.stdout.writeSync(new TextEncoder().encode(streamer.push(id)));
 * streamer.flush();
 * ```
 */
export class TextStreamer {
  /**
   * Ids held past this many while the text still ends in U+FFFD are given up on (emitted as is): the bytes
   * then are not a character in the making but invalid UTF-8 (as a random model produces).
   */
  static readonly MAX_PENDING = 16;
  readonly #tok: LlamaTokenizer;
  readonly #skip: boolean;
  #pending: number[] = [];
  /** UTF-16 length of the decoding of `#pending` already returned. */
  #emitted = 0;

  /** A streamer over `tok`'s vocabulary. */
  constructor(tok: LlamaTokenizer, opts: TextStreamerOptions = {}) {
    this.#tok = tok;
    this.#skip = opts.skip_special_tokens ?? false;
  }

  /** Adds one id; returns the newly completed text (possibly `""`). */
  push(id: number): string {
    this.#pending.push(id);
    const text = this.#tok.decode(this.#pending, { skip_special_tokens: this.#skip });
    let safe = text.length;
    while (safe > 0 && text.charCodeAt(safe - 1) === 0xfffd) safe--;
    if (safe === text.length || this.#pending.length >= TextStreamer.MAX_PENDING) {
      const out = text.slice(this.#emitted);
      this.#pending = [];
      this.#emitted = 0;
      return out;
    }
    // Text before the trailing U+FFFD run is final: later bytes cannot change it.
    const out = text.slice(this.#emitted, Math.max(safe, this.#emitted));
    this.#emitted = Math.max(safe, this.#emitted);
    return out;
  }

  /** Returns whatever is held back (an incomplete character decodes to U+FFFD) and starts afresh. */
  flush(): string {
    if (this.#pending.length === 0) return "";
    const text = this.#tok.decode(this.#pending, { skip_special_tokens: this.#skip });
    const out = text.slice(this.#emitted);
    this.#pending = [];
    this.#emitted = 0;
    return out;
  }
}
