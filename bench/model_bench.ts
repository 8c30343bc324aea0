/**
 * `bench_small` generation under `deno bench` (`deno bench --allow-read --allow-env bench/model_bench.ts`):
 * the prefill (128 prompt tokens, the image token first, attending to 1601 vision tokens, up to the first
 * token on the host), and the same prefill followed by 16 decode steps, with `generateStream` as an
 * application calls it: the decode time is the difference of the two (timing from the first token on the
 * host would flatter it, see `bench/run.ts`). `bench/run.ts` measures the same with 64 steps and reports
 * tokens/s.
 *
 * @module
 */
import { generateStream, getGpu, llama3_2_vision_decoder } from "../mod.ts";
import { BENCH_CONFIGS } from "./configs.ts";
import { benchInputs } from "./harness.ts";
import { uploadRandomWeights } from "./random_weights.ts";

const cfg = BENCH_CONFIGS.bench_small;
const DECODE_STEPS = 16;
const gpu = await getGpu({ quiet: true });
const model = llama3_2_vision_decoder(cfg.args);
await uploadRandomWeights(model, gpu);
const inputs = benchInputs(cfg.args.vocab_size, cfg.args.embed_dim, cfg.prompt_len, cfg.encoder_seq_len);
const options = { top_k: 1, encoder_input: inputs.encoder_input, encoder_mask: inputs.encoder_mask };

Deno.bench(
  {
    name: `bench_small prefill: ${cfg.prompt_len} tokens + ${cfg.encoder_seq_len} vision tokens`,
    n: 2,
    warmup: 1,
  },
  async () => {
    for await (const _ of generateStream(model, inputs.prompt, { ...options, max_new_tokens: 1 })) {
      // the first token is on the host: the prefill is done
    }
  },
);

Deno.bench(
  { name: `bench_small prefill + ${DECODE_STEPS} decode steps (decode = this − prefill)`, n: 2, warmup: 1 },
  async () => {
    for await (
      const _ of generateStream(model, inputs.prompt, { ...options, max_new_tokens: DECODE_STEPS + 1 })
    ) {
      // the whole call: the last step's token is on the host when it ends
    }
  },
);
