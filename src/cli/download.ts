/**
 * The `download <repo>` command: fetches a checkpoint into the Hugging Face cache.
 *
 * @module
 */
import { downloadModel } from "../hub/download.ts";
import { progressReporter } from "../hub/progress.ts";

/**
 * Downloads what generation needs from Hub repo `repo` (`org/name`) at `opts.revision` (default `main`) into
 * the Hugging Face cache, honouring `HF_HOME`, `HF_HUB_CACHE`, `HF_TOKEN`, `HF_ENDPOINT` and `HF_HUB_OFFLINE`.
 * Progress goes to stderr; the snapshot folder (usable as `--model`) is printed on stdout.
 */
export async function downloadCommand(repo: string, opts: { revision?: string } = {}): Promise<void> {
  const { dir } = await downloadModel(repo, { revision: opts.revision, onProgress: progressReporter() });
  console.log(dir);
}
