/**
 * Command line: `deno run main.ts generate` runs greedy, KV-cached decoding on a checkpoint folder
 * (default: the bundled tiny random model, so it works offline) and streams the generated token ids.
 *
 * @module
 */
import { Command, InvalidArgumentError } from "@commander-js/extra-typings";
import { fileURLToPath } from "node:url";
import { loadCheckpoint } from "./mod.ts";

const DEFAULT_MODEL = fileURLToPath(new URL("./assets/tiny-random", import.meta.url));

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("expected a positive integer");
  return n;
}

function tokenIds(value: string): number[] {
  const ids = value.split(",").map((s) => Number(s.trim()));
  if (ids.length === 0 || ids.some((v) => !Number.isInteger(v) || v < 0)) {
    throw new InvalidArgumentError("expected comma-separated non-negative integers, e.g. 1,17,42");
  }
  return ids;
}

/** Greedy cached decoding: prefill the prompt, then feed one token per step, streaming ids to stdout. */
async function generate(opts: { model: string; tokens: number[]; maxNewTokens: number }): Promise<void> {
  if (opts.model === DEFAULT_MODEL) {
    console.error("note: using the bundled tiny random model; its output is meaningless ids");
  }
  const t0 = performance.now();
  using model = await loadCheckpoint(opts.model);
  const loadMs = performance.now() - t0;
  const prompt = opts.tokens;
  const total = prompt.length + opts.maxNewTokens;
  model.setup_caches(1, { decoder_max_seq_len: total });
  const V = model.output.out_dim;
  const causal = (row0: number, n: number) => {
    const data = new Uint8Array(n * total);
    for (let i = 0; i < n; i++) data.fill(1, i * total, i * total + row0 + i + 1);
    return { data, shape: [1, n, total] };
  };
  const encoder = new TextEncoder();
  let input = new Int32Array(prompt);
  let pos = 0;
  const t1 = performance.now();
  for (let step = 0; step < opts.maxNewTokens; step++) {
    const n = input.length;
    using logits = model.forward({ data: input, shape: [1, n] }, {
      mask: causal(pos, n),
      input_pos: { data: Int32Array.from({ length: n }, (_, i) => pos + i), shape: [1, n] },
    });
    const { data } = await logits.read();
    let best = 0;
    for (let j = 1; j < V; j++) if (data[(n - 1) * V + j] > data[(n - 1) * V + best]) best = j;
    await Deno.stdout.write(encoder.encode(`${step > 0 ? " " : ""}${best}`));
    pos += n;
    input = new Int32Array([best]);
  }
  await Deno.stdout.write(encoder.encode("\n"));
  const secs = (performance.now() - t1) / 1000;
  console.error(
    `loaded in ${
      (loadMs / 1000).toFixed(2)
    } s; ${prompt.length} prompt + ${opts.maxNewTokens} new tokens in ` +
      `${secs.toFixed(2)} s (${((prompt.length + opts.maxNewTokens) / secs).toFixed(1)} tokens/s)`,
  );
}

/** The command-line program (exported for tests). */
export function program(): Command {
  const cli = new Command()
    .name("llama-vision")
    .description("Llama 3.2 Vision on WebGPU")
    .showHelpAfterError();
  cli.command("generate")
    .description("greedy, KV-cached decoding of prompt token ids; ids stream to stdout")
    .option(
      "--model <dir>",
      "checkpoint folder: config.json + model.safetensors (or shards with model.safetensors.index.json)",
      DEFAULT_MODEL,
    )
    .option("--tokens <ids>", "prompt token ids, comma-separated", tokenIds, [1, 17, 42, 99, 7])
    .option("--max-new-tokens <n>", "tokens to generate", positiveInt, 16)
    .action(async (o) => await generate({ model: o.model, tokens: o.tokens, maxNewTokens: o.maxNewTokens }));
  return cli as unknown as Command;
}

if (import.meta.main) {
  try {
    await program().parseAsync(Deno.args, { from: "user" });
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
