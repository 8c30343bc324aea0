/**
 * `--model` resolution: a local checkpoint folder, or a Hub model id fetched into (or found in) the cache.
 *
 * @module
 */
import { downloadModel, type DownloadOptions, isRepoId } from "./download.ts";

/**
 * The checkpoint folder for `model`: an existing local folder is returned as is; otherwise `model` must be a
 * Hub id `org/name`, whose snapshot is downloaded (only the files generation needs) or, offline
 * (`HF_HUB_OFFLINE=1` or `opts.offline`), found in the cache. Throws a clear error for anything else.
 */
export async function resolveModelDir(model: string, opts: DownloadOptions = {}): Promise<string> {
  let stat: Deno.FileInfo | undefined;
  try {
    stat = await Deno.stat(model);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (stat?.isDirectory) return model;
  if (stat) throw new Error(`${model} is a file: --model takes a checkpoint folder or a Hub id "org/name".`);
  if (!isRepoId(model)) {
    throw new Error(
      `"${model}" is neither an existing folder nor a Hub model id "org/name" ` +
        `(e.g. meta-llama/Llama-3.2-11B-Vision-Instruct).`,
    );
  }
  return (await downloadModel(model, opts)).dir;
}
