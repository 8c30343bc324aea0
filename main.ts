/**
 * The command line: `generate` (stream text from a Llama 3.2 Vision checkpoint), `download` (fetch a
 * checkpoint into the Hugging Face cache) and `info` (adapter and model facts).
 *
 * @module
 */
import { Command, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import { generateCommand } from "./src/cli/generate.ts";
import { infoCommand } from "./src/cli/info.ts";
import { downloadCommand } from "./src/cli/download.ts";
import { BUNDLED_NAME } from "./src/cli/bundled.ts";

function integer(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer ≥ ${min}`);
    return n;
  };
}

function number(check: (n: number) => boolean, what: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || !check(n)) {
      throw new InvalidArgumentError(`expected ${what}`);
    }
    return n;
  };
}

function tokenIds(value: string): number[] {
  const ids = value.split(/[\s,]+/).filter(Boolean).map(Number);
  if (ids.length === 0 || ids.some((v) => !Number.isInteger(v) || v < 0)) {
    throw new InvalidArgumentError("expected comma-separated non-negative integers, e.g. 128000,9906");
  }
  return ids;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** The command-line program (exported for tests). */
export function program(): Command {
  const cli = new Command()
    .name("llama-vision")
    .description("Llama 3.2 Vision on WebGPU: generate text from Hugging Face checkpoints")
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => Deno.stdout.writeSync(new TextEncoder().encode(s)) });

  cli.command("generate")
    .description("generate text from a prompt; text streams to stdout, progress and statistics go to stderr")
    .option(
      "--model <repo or folder>",
      "Hugging Face repo id (org/name) or a local checkpoint folder",
      BUNDLED_NAME,
    )
    .option("--revision <rev>", "branch, tag or commit of a Hub repo", "main")
    .option("--prompt <text>", "the prompt (default: read from stdin)")
    .option("--system <text>", "a system message (chat mode)")
    .option("--no-chat", "use the prompt as raw text instead of applying the chat template")
    .option(
      "--max-new-tokens <n>",
      "tokens to generate (default: generation_config.json, else 256)",
      integer(1),
    )
    .option("--temperature <t>", "sampling temperature, 0 = greedy", number((n) => n >= 0, "a number ≥ 0"))
    .option("--top-k <k>", "sample from the k most likely tokens (1 = greedy)", integer(1))
    .option(
      "--top-p <p>",
      "nucleus sampling mass in (0, 1]",
      number((n) => n > 0 && n <= 1, "a number in (0, 1]"),
    )
    .option("--seed <n>", "random seed for reproducible sampling", integer(0))
    .option("--stop <text>", "stop when this text is generated (repeatable)", collect, [] as string[])
    .option(
      "--image <path>",
      "an image (JPEG, PNG or WebP) to show the model (repeatable)",
      collect,
      [] as string[],
    )
    .addOption(
      new Option("--token-ids <ids>", "prompt as token ids, bypassing the tokenizer").argParser(tokenIds),
    )
    .option("--ids", "print generated token ids instead of text")
    .addOption(
      new Option("--dtype <dtype>", "weights on the GPU: checkpoint's (auto), bf16, or quantized q8 / q4")
        .choices(["auto", "bf16", "q8", "q4"] as const).default("auto" as const),
    )
    .action(async (o) => {
      await generateCommand({
        model: o.model,
        revision: o.revision,
        prompt: o.prompt,
        system: o.system,
        chat: o.chat,
        maxNewTokens: o.maxNewTokens,
        temperature: o.temperature,
        topK: o.topK,
        topP: o.topP,
        seed: o.seed,
        stop: o.stop,
        tokenIds: o.tokenIds,
        ids: o.ids ?? false,
        images: o.image,
        dtype: o.dtype,
      });
    });

  cli.command("download")
    .description(
      "fetch a checkpoint from the Hugging Face Hub into the cache (only the files generation needs)",
    )
    .argument("<repo>", "repo id, e.g. meta-llama/Llama-3.2-11B-Vision-Instruct")
    .option("--revision <rev>", "branch, tag or commit", "main")
    .action(async (repo, o) => await downloadCommand(repo, { revision: o.revision }));

  cli.command("info")
    .description("show the WebGPU adapter and its limits, and a model's configuration and memory needs")
    .option("--model <repo or folder>", "a Hub repo id or a local checkpoint folder")
    .option("--revision <rev>", "branch, tag or commit of a Hub repo", "main")
    .option("--context <n>", "context length for the KV-cache estimate", integer(1))
    .action(async (o) => await infoCommand({ model: o.model, revision: o.revision, context: o.context }));
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
