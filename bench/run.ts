/**
 * End-to-end generation benchmark of one configuration (`bench/configs.ts`) with random weights:
 *
 * ```sh
 * deno run -A bench/run.ts --config bench_small [--json] [--dtype auto|bf16|q8|q4] [--prompt-len 128] [--decode-steps 64] [--rounds 3]
 * ```
 *
 * Builds the decoder, streams random bf16 weights into it, measures the adapter's streaming-read
 * bandwidth (the roofline), warms the pipelines up with a short generation, then generates
 * `--decode-steps` tokens after a `--prompt-len` prompt (image token first, every position attending to
 * 1601 vision tokens) with `generateStream` (greedy, sampling on the GPU), in `--rounds` rounds (default
 * 3). The prompt alone (one generated token) runs before and after each full generation: a round's
 * prompt tokens/s is the prompt length over the mean of those two times, its decode tokens/s the decode
 * steps over the full generation's time minus that mean; the best round of each is reported (the
 * roofline, too, is the best of its tries), all of them in `details.rounds`. Timing the tokens as they reach the host would not do: a CPU adapter runs each submission inside
 * the next `queue.submit` call, so readbacks arrive in bursts and several steps late, which flattered
 * the decode rate by up to 10% (and far more with a deeper lookahead). Afterwards a few decode steps are
 * profiled: host recording time, dispatches per step, GPU time of pre-recorded steps.
 *
 * With `--json`, stdout is one JSON object: `{ config, adapter, weight_dtype, prefill_tok_s,
 * decode_tok_s, roofline_gb_s, decode_weight_gb_s, gpu_bytes, host_peak_rss_bytes, details }`; the
 * human-readable report goes to stderr. Without it, the report goes to stdout.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type GenerateStats, generateStream, getGpu, llama3_2_vision_decoder } from "../mod.ts";
import { benchConfig } from "./configs.ts";
import {
  benchInputs,
  DecodeState,
  decodeWeightBytes,
  measureRoofline,
  profileDecode,
  RssTracker,
  weightBytes,
} from "./harness.ts";
import { BENCH_DTYPES, type BenchDtype, uploadRandomWeights } from "./random_weights.ts";

const USAGE = "usage: deno run -A bench/run.ts --config bench_small|bench_11b_slice [--json] " +
  "[--dtype auto|bf16|q8|q4] [--prompt-len N] [--decode-steps N] [--profile-steps N] [--rounds N]";

function positiveInt(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      config: { type: "string" },
      json: { type: "boolean", default: false },
      dtype: { type: "string", default: "auto" },
      "prompt-len": { type: "string" },
      "decode-steps": { type: "string" },
      "profile-steps": { type: "string" },
      rounds: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (!values.config) throw new Error(`--config is required\n${USAGE}`);
  const cfg = benchConfig(values.config);
  const dtype = values.dtype as BenchDtype;
  if (!BENCH_DTYPES.includes(dtype)) throw new Error(`--dtype must be one of ${BENCH_DTYPES.join(", ")}`);
  const promptLen = positiveInt("prompt-len", values["prompt-len"], cfg.prompt_len);
  const decodeSteps = positiveInt("decode-steps", values["decode-steps"], cfg.decode_steps);
  const profileSteps = Math.min(decodeSteps, positiveInt("profile-steps", values["profile-steps"], 16));
  const rounds = positiveInt("rounds", values.rounds, 3);
  const report = values.json ? console.error : console.log;

  const rss = new RssTracker();
  const gpu = await getGpu({ quiet: true });
  report(
    `${cfg.name}: ${cfg.description}; adapter ${gpu.description}${gpu.isFallbackAdapter ? " (CPU)" : ""}`,
  );

  // The process before any weight exists: Deno, the driver, the device.
  const rssBaseline = RssTracker.current();
  const model = llama3_2_vision_decoder(cfg.args);
  const params = model.named_parameters().reduce((a, [, p]) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  const tLoad = performance.now();
  let shown = 0;
  await uploadRandomWeights(model, gpu, {
    dtype,
    onProgress: (done, total) => {
      const pct = Math.floor((done / total) * 10) * 10;
      if (pct > shown) {
        shown = pct;
        console.error(`  uploading random weights: ${pct}%`);
      }
    },
  });
  const loadS = (performance.now() - tLoad) / 1000;
  const weights = weightBytes(model);
  // Host memory while loading beyond the baseline and the weights themselves (which a CPU adapter keeps
  // in host memory): the staging of tensors on their way to the GPU.
  const loadPeak = rss.peak();
  // The largest tensor as the checkpoint holds it (random weights are bf16), whatever --dtype stores.
  const largestTensor = Math.max(
    ...model.named_parameters().map(([, p]) => 2 * p.shape.reduce((a, b) => a * b, 1)),
  );
  const loadStaging = loadPeak - rssBaseline - (gpu.isFallbackAdapter ? weights : 0);
  const decodeBytes = decodeWeightBytes(model);
  const weightDtype = model.output.weight.storage.dtype;
  report(
    `  ${(params / 1e6).toFixed(0)}M parameters, ${(weights / 2 ** 30).toFixed(2)} GiB of ${weightDtype} ` +
      `weights uploaded in ${loadS.toFixed(1)} s; a decode step reads ${
        (decodeBytes / 2 ** 30).toFixed(2)
      } GiB`,
  );

  report(
    `  host memory while loading: peak RSS ${(loadPeak / 2 ** 20).toFixed(0)} MiB = baseline ${
      (rssBaseline / 2 ** 20).toFixed(0)
    } MiB${
      gpu.isFallbackAdapter
        ? ` + weights ${(weights / 2 ** 20).toFixed(0)} MiB (host memory on a CPU adapter)`
        : ""
    } + ${(loadStaging / 2 ** 20).toFixed(0)} MiB staging (largest checkpoint tensor ${
      (largestTensor / 2 ** 20).toFixed(0)
    } MiB)`,
  );
  const roofline = await measureRoofline(gpu);
  report(`  roofline (stream_read, 128 MiB): ${roofline.toFixed(1)} GB/s`);

  const E = cfg.args.embed_dim;
  const S = cfg.encoder_seq_len;
  const V = cfg.args.vocab_size;
  const run = async (inputs: ReturnType<typeof benchInputs>, newTokens: number, stats: GenerateStats) => {
    for await (
      const _ of generateStream(model, inputs.prompt, {
        max_new_tokens: newTokens,
        top_k: 1,
        encoder_input: inputs.encoder_input,
        encoder_mask: inputs.encoder_mask,
      }, stats)
    ) {
      // tokens are discarded: only the timing matters
    }
  };
  const stats: GenerateStats = { prompt_tokens: 0, generated_tokens: 0, prefill_ms: 0, decode_ms: 0 };
  const tWarm = performance.now();
  await run(benchInputs(V, E, Math.min(8, promptLen), S), 2, { ...stats });
  report(
    `  warm-up (pipelines, 8-token prompt, 2 tokens): ${((performance.now() - tWarm) / 1000).toFixed(1)} s`,
  );

  // Rounds of the prompt with one generated token and the prompt plus `decodeSteps` decode steps, and the
  // prompt once more at the end: whole calls, so the decode time is a difference of wall times, whenever
  // the tokens reach the host. Round i brackets its full generation with the prompt runs before and
  // after it; the best round of each rate is reported (shared VMs slow down for seconds at a time, which
  // a single round cannot tell from the code's own speed), and every round goes into the JSON details.
  const inputs = benchInputs(V, E, promptLen, S);
  const timed = async (tokens: number) => {
    const t = performance.now();
    await run(inputs, tokens, stats);
    return performance.now() - t;
  };
  const prompts = [await timed(1)];
  const fulls: number[] = [];
  let steps = 0;
  for (let r = 0; r < rounds; r++) {
    fulls.push(await timed(decodeSteps + 1));
    steps = stats.generated_tokens - 1;
    prompts.push(await timed(1));
  }
  const roundsMs = fulls.map((full, r) => {
    const prefill = (prompts[r] + prompts[r + 1]) / 2;
    return { prefill_ms: prefill, decode_ms: full - prefill };
  });
  const prefillMs = Math.min(...roundsMs.map((r) => r.prefill_ms));
  // A round whose decode time drowns in the prompt runs' spread (a few --decode-steps) says nothing.
  const measured = roundsMs.filter((r) => r.decode_ms > 0);
  if (measured.length === 0) {
    throw new Error(
      `the decode time is lost in the prompt's own variation: raise --decode-steps (${decodeSteps})`,
    );
  }
  const decodeMs = Math.min(...measured.map((r) => r.decode_ms));
  const prefillTokS = promptLen / (prefillMs / 1000);
  const decodeTokS = steps / (decodeMs / 1000);
  const list = (ms: number[]) => ms.map((m) => (m / 1000).toFixed(2)).join(", ");
  report(
    `  prefill: ${promptLen} tokens (+${S} vision tokens) in ${
      (prefillMs / 1000).toFixed(2)
    } s (best of ${rounds} ` +
      `rounds: ${list(roundsMs.map((r) => r.prefill_ms))} s) = ${prefillTokS.toFixed(1)} tokens/s`,
  );
  report(
    `  decode: ${steps} steps in ${(decodeMs / 1000).toFixed(2)} s (best of ${
      list(roundsMs.map((r) => r.decode_ms))
    } s) = ` +
      `${decodeTokS.toFixed(2)} tokens/s (${(decodeMs / steps).toFixed(1)} ms/step), ` +
      `${((decodeBytes * decodeTokS) / 1e9).toFixed(1)} GB/s of weights`,
  );
  const gpuBytes = model.gpu_bytes;

  // The caches still hold the prompt: profile decode steps from the end of the prompt.
  const state = DecodeState.attach(model, promptLen, S);
  const profile = await profileDecode(state, profileSteps);
  state.destroy();
  report(
    `  decode step profile (${profile.steps} steps): ${profile.dispatches_per_step} dispatches + ` +
      `${profile.copies_per_step} copies per step; host recording ${profile.host_record_ms.toFixed(2)} ms, ` +
      `submit ${profile.host_submit_ms.toFixed(2)} ms; pre-recorded steps back to back ` +
      `${profile.gpu_ms.toFixed(2)} ms/step; one step alone ${profile.serial_step_ms.toFixed(2)} ms`,
  );
  report(
    `  dispatches per step by kernel: ${
      Object.entries(profile.kernels).map(([k, n]) => `${k} ${n}`).join(", ")
    }`,
  );

  model.destroy();
  const peak = rss.stop();
  report(
    `  GPU memory (weights + caches): ${(gpuBytes / 2 ** 30).toFixed(2)} GiB; host peak RSS ${
      (peak / 2 ** 30).toFixed(2)
    } GiB`,
  );
  if (values.json) {
    const round = (x: number, d = 3) => Number(x.toFixed(d));
    console.log(JSON.stringify({
      config: cfg.name,
      adapter: gpu.description + (gpu.isFallbackAdapter ? " (CPU fallback)" : ""),
      weight_dtype: weightDtype,
      prefill_tok_s: round(prefillTokS),
      decode_tok_s: round(decodeTokS),
      roofline_gb_s: round(roofline),
      decode_weight_gb_s: round((decodeBytes * decodeTokS) / 1e9),
      gpu_bytes: gpuBytes,
      host_peak_rss_bytes: peak,
      details: {
        host_baseline_rss_bytes: rssBaseline,
        host_load_peak_rss_bytes: loadPeak,
        host_load_staging_bytes: loadStaging,
        largest_tensor_bytes: largestTensor,
        params,
        weight_bytes: weights,
        decode_weight_bytes_per_step: decodeBytes,
        prompt_len: promptLen,
        encoder_len: S,
        decode_steps: steps,
        prefill_ms: round(prefillMs, 1),
        decode_ms: round(decodeMs, 1),
        rounds: roundsMs.map((r) => ({
          prefill_ms: round(r.prefill_ms, 1),
          decode_ms: round(r.decode_ms, 1),
        })),
        load_s: round(loadS, 2),
        decode_profile: {
          ...profile,
          host_record_ms: round(profile.host_record_ms),
          host_submit_ms: round(profile.host_submit_ms),
          gpu_ms: round(profile.gpu_ms),
          serial_step_ms: round(profile.serial_step_ms),
        },
      },
    }));
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`error: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
