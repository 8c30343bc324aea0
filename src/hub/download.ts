/**
 * Downloads the files a checkpoint needs for generation into the standard Hugging Face cache
 * (`<cache>/models--org--name/{blobs,snapshots/<sha>,refs/<branch>}`), the layout Python's
 * `huggingface_hub` uses, so that each tool reuses what the other fetched.
 *
 * Built on `npm:@huggingface/hub`: `modelInfo` resolves the revision to a commit sha, `listFiles` lists
 * the repo at that sha, `downloadFileToCacheDir` fetches each file pinned to the sha (it writes
 * `blobs/<etag>.incomplete`, renames it to `blobs/<etag>` and only then links it into `snapshots/`, so a
 * snapshot never holds a half-written file). What the library does not do is done here: choosing the
 * files, writing `refs/<branch>`, offline use, progress, clear errors.
 *
 * @module
 */
import { HubApiError, listFiles, modelInfo } from "@huggingface/hub";
import type { ListFileEntry } from "@huggingface/hub";
import { dirname, join } from "node:path";
import { hubCacheDir, hubEndpoint, hubOffline, hubToken } from "./env.ts";
import {
  linkBlob,
  RetryableError,
  type RetryOptions,
  retryPolicy,
  transferBlob,
  withRetries,
} from "./transfer.ts";

export type { RetryOptions } from "./transfer.ts";

/** The small files generation reads, fetched when the repo has them (only `config.json` is required). */
export const METADATA_FILES: readonly string[] = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "chat_template.json",
  "chat_template.jinja",
  "preprocessor_config.json",
];

/** The index of a sharded checkpoint; its `weight_map` names the shards to fetch. */
export const SAFETENSORS_INDEX = "model.safetensors.index.json";

/** Progress of {@link downloadModel}: the current file, and the totals of this run. */
export interface DownloadProgress {
  /** The file being fetched (a path in the repo). */
  file: string;
  /** Bytes of `file` written so far. */
  done: number;
  /** The size of `file`. */
  total: number;
  /** Files finished (already cached ones included; `file` counts once its last event arrives). */
  filesDone: number;
  /** The files of the checkpoint. */
  filesTotal: number;
  /** Bytes fetched in this run, over all files. */
  bytesDone: number;
  /** The bytes this run has to fetch (files already in the snapshot excluded). */
  bytesTotal: number;
}

/** Options of {@link downloadModel}; each defaults to the environment (see `env.ts`). */
export interface DownloadOptions {
  /** A branch, tag or full commit sha (default `main`). */
  revision?: string;
  /** The Hub cache folder (default `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`). */
  cacheDir?: string;
  /** The Hub's URL (default `HF_ENDPOINT`, else https://huggingface.co). */
  endpoint?: string;
  /** An access token (default `HF_TOKEN`, else the token saved by `hf auth login`). */
  token?: string;
  /** Use only the cache, with no network request at all (default `HF_HUB_OFFLINE=1`). */
  offline?: boolean;
  /** Called as bytes arrive (a few times a second) and once when each file is finished. */
  onProgress?: (p: DownloadProgress) => void;
  /**
   * Retries of 5xx / 429 answers, dropped connections and stalled transfers: bounded, with exponential
   * backoff; each retry of a file resumes it with an HTTP Range request (default 5 tries, 1 s doubling).
   */
  retry?: RetryOptions;
  /**
   * Aborts the download (Ctrl-C). The file being fetched stays as `blobs/<etag>.incomplete` and the next run
   * resumes it; nothing unfinished is ever linked into `snapshots/`, and `refs/` is not written.
   */
  signal?: AbortSignal;
}

/** What {@link downloadModel} fetched. */
export interface DownloadResult {
  /** The snapshot folder `<cache>/models--org--name/snapshots/<sha>`: a checkpoint folder. */
  dir: string;
  /** The commit the files belong to. */
  sha: string;
  /** The files of the checkpoint, relative to `dir`. */
  files: string[];
}

const SHA = /^[0-9a-f]{40}$/;
const REPO_ID = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/;

/** True when `id` looks like a Hub model id `org/name`. */
export function isRepoId(id: string): boolean {
  return REPO_ID.test(id) && !id.includes("..") && !id.includes("--");
}

/** The repo's folder in the cache: `<cacheDir>/models--org--name`. */
export function repoCacheDir(cacheDir: string, repo: string): string {
  return join(cacheDir, `models--${repo.split("/").join("--")}`);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** The shards named by an index file's `weight_map`, in order of first appearance. */
function shardsOf(indexText: string, where: string): string[] {
  let map: unknown;
  try {
    map = (JSON.parse(indexText) as { weight_map?: unknown }).weight_map;
  } catch (e) {
    throw new Error(`${where} is not valid JSON: ${(e as Error).message}`);
  }
  if (!map || typeof map !== "object") throw new Error(`${where} has no "weight_map"`);
  return [...new Set(Object.values(map as Record<string, string>))];
}

/**
 * The snapshot of `revision` (a ref such as `main`, or a sha) if the cache holds a usable checkpoint
 * there: `config.json` plus the weights (every shard of the index, or a top-level `*.safetensors`).
 * Otherwise `reason` says what is missing.
 */
async function cachedSnapshot(
  storage: string,
  revision: string,
): Promise<DownloadResult | { reason: string }> {
  let sha = revision;
  if (!SHA.test(revision)) {
    try {
      sha = (await Deno.readTextFile(join(storage, "refs", revision))).trim();
    } catch {
      return { reason: `no ${join(storage, "refs", revision)}` };
    }
  }
  const dir = join(storage, "snapshots", sha);
  if (!(await isFile(join(dir, "config.json")))) return { reason: `${join(dir, "config.json")} is missing` };
  const files: string[] = [];
  for (const f of METADATA_FILES) if (await isFile(join(dir, f))) files.push(f);
  let weights: string[];
  if (await isFile(join(dir, SAFETENSORS_INDEX))) {
    files.push(SAFETENSORS_INDEX);
    weights = shardsOf(await Deno.readTextFile(join(dir, SAFETENSORS_INDEX)), join(dir, SAFETENSORS_INDEX));
    for (const w of weights) {
      if (!(await isFile(join(dir, w)))) return { reason: `${join(dir, w)} is missing` };
    }
  } else {
    weights = [];
    for await (const e of Deno.readDir(dir)) {
      if (e.name.endsWith(".safetensors") && await isFile(join(dir, e.name))) weights.push(e.name);
    }
    if (weights.length === 0) return { reason: `no *.safetensors in ${dir}` };
    weights.sort();
  }
  return { dir, sha, files: [...files, ...weights] };
}

/** Writes `path` atomically (temp file + rename), so a reader never sees half a ref. */
async function writeAtomic(path: string, text: string): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === "ENOSPC" || /ENOSPC|No space left on device|os error 28/i.test(errorText(e));
}

/** Context for turning a failure into an error that says what to do (see {@link explainFailure}). */
export interface Failure {
  /** The repo id `org/name`. */
  repo: string;
  /** The revision asked for. */
  revision: string;
  /** The Hub's URL. */
  endpoint: string;
  /** The Hub cache folder. */
  cacheDir: string;
  /** The repo's folder in the cache (`<cacheDir>/models--org--name`). */
  storage: string;
  /** The token in use, if any. */
  token?: string;
  /** `X-Error-Code` of the last failed response (`RepoNotFound`, `RevisionNotFound`, `GatedRepo`, …). */
  errorCode: string | null;
  /** The file being fetched, when the failure happened during a file transfer. */
  file?: string;
}

/** An Error that names the problem and its fix, with the original as `cause`. */
export async function explainFailure(e: unknown, f: Failure): Promise<Error> {
  const { repo, revision, endpoint } = f;
  const page = `${endpoint}/${repo}`;
  if (isDiskFull(e)) {
    return new Error(
      `Disk full while downloading ${
        f.file ?? repo
      } into ${f.cacheDir}: free some space, or set HF_HUB_CACHE ` +
        `(or HF_HOME) to a folder on a bigger disk, and run again.`,
      { cause: e },
    );
  }
  if (e instanceof HubApiError) {
    const status = e.statusCode;
    if (status === 401 || status === 403) {
      if (f.errorCode === "GatedRepo" || f.file !== undefined) {
        return new Error(
          f.token
            ? `Access to ${repo} was refused (${status}) with the token from HF_TOKEN: accept the licence on ` +
              `${page} with the account that owns the token (and wait for approval), or set HF_TOKEN to a ` +
              `token of an account that has access.`
            : `${repo} is gated (${status}): accept the licence on ${page} and set HF_TOKEN to an access ` +
              `token of that account (${endpoint}/settings/tokens).`,
          { cause: e },
        );
      }
      return new Error(
        f.token
          ? `${endpoint} refused ${repo} (${status}) with the token from HF_TOKEN: check that the repo exists ` +
            `(${page}) and that the token is valid and can read it.`
          : `Repository ${repo} not found on ${endpoint}, or it is private (${status}): check the name ` +
            `(${page}); for a private or gated repo set HF_TOKEN.`,
        { cause: e },
      );
    }
    if (status === 404) {
      if (f.errorCode === "RevisionNotFound") {
        return new Error(
          `Revision "${revision}" not found in ${repo}: use an existing branch, tag or full commit sha ` +
            `(see ${page}/tree/main).`,
          { cause: e },
        );
      }
      if (f.errorCode === "EntryNotFound" && f.file) {
        return new Error(`${f.file} is not in ${repo} at revision "${revision}".`, { cause: e });
      }
      return new Error(
        `Repository ${repo} (revision "${revision}") not found on ${endpoint}: check the spelling ` +
          `(org/name, as in ${page}); for a private repo set HF_TOKEN.`,
        { cause: e },
      );
    }
    return new Error(
      `${endpoint} answered ${status} for ${f.file ?? repo}${
        / \(gave up after \d+ attempts\)$/.exec(e.message)?.[0] ?? ""
      }: try again later. ${await offlineHint(f)}`,
      { cause: e },
    );
  }
  const message = errorText(e);
  if (e instanceof RetryableError) {
    return new Error(
      `The download of ${
        f.file ?? repo
      } from ${endpoint} was interrupted (${message}): run again to resume ` +
        `(finished files are kept). ${await offlineHint(f)}`,
      { cause: e },
    );
  }
  if (
    e instanceof TypeError || typeof e === "string" || /connect|network|dns|resolve|socket/i.test(message)
  ) {
    // Deno says "error sending request … tcp connect error: Connection refused" when the host cannot be
    // reached, and "error reading a body from connection" when a transfer is cut.
    const unreachable = /sending request|connect error|refused|dns|lookup|unreachable|no route/i.test(
      message,
    );
    const what = unreachable || f.file === undefined
      ? `Cannot reach ${endpoint} (${message}).`
      : `The download of ${f.file} from ${endpoint} was interrupted (${message}): run again to retry ` +
        `(finished files are kept).`;
    return new Error(`${what} ${await offlineHint(f)}`, { cause: e });
  }
  return e instanceof Error ? e : new Error(message);
}

async function offlineHint(f: Failure): Promise<string> {
  const cached = await cachedSnapshot(f.storage, f.revision);
  return "dir" in cached
    ? `${f.repo} is already in the cache (${cached.dir}): set HF_HUB_OFFLINE=1 to use it without the network.`
    : `If the model is already in the cache, set HF_HUB_OFFLINE=1 to use it without the network.`;
}

/**
 * Fetches what generation needs from Hub repo `repo` (`org/name`) into the Hugging Face cache and returns
 * the snapshot folder. Only `config.json`, the tokenizer / generation / chat-template / preprocessor files
 * that exist, and the safetensors weights (the shards listed by `model.safetensors.index.json`, else the
 * top-level `*.safetensors`) are fetched, never `original/`, `*.bin`, `*.pth` or other extras.
 *
 * Online, the revision is resolved to a commit sha first, every file is fetched pinned to it (files
 * already in that snapshot cost nothing) and `refs/<revision>` is written last (not for a sha revision).
 * A full-sha revision that is complete in the cache makes no request at all. Offline (`offline` or
 * `HF_HUB_OFFLINE=1`) the snapshot is looked up through `refs/<revision>` and checked, with no request.
 *
 * Errors say what to do: gated repo (accept the licence, set `HF_TOKEN`), unknown repo or revision,
 * no network (set `HF_HUB_OFFLINE=1` if cached), interrupted transfer (run again), disk full.
 */
export async function downloadModel(repo: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
  if (!isRepoId(repo)) {
    throw new Error(
      `"${repo}" is not a Hub model id: expected "org/name", e.g. meta-llama/Llama-3.2-11B-Vision.`,
    );
  }
  const revision = opts.revision ?? "main";
  const cacheDir = opts.cacheDir ?? hubCacheDir();
  const endpoint = (opts.endpoint ?? hubEndpoint()).replace(/\/+$/, "");
  const token = opts.token ?? hubToken();
  const storage = repoCacheDir(cacheDir, repo);

  if (opts.offline ?? hubOffline()) {
    const cached = await cachedSnapshot(storage, revision);
    if ("dir" in cached) return cached;
    throw new Error(
      `${repo} (revision "${revision}") is not in the cache ${cacheDir} (${cached.reason}) and offline mode ` +
        `is on (HF_HUB_OFFLINE=1): download it once with the network, or point HF_HUB_CACHE / HF_HOME at ` +
        `the cache that holds it.`,
    );
  }
  if (SHA.test(revision)) {
    const cached = await cachedSnapshot(storage, revision);
    if ("dir" in cached) return cached; // a commit never changes: nothing to ask the Hub
  }

  // The library refuses tokens that do not start with "hf_" (before any request). Such tokens (a
  // mirror's, an older format) are sent here instead, and only to the endpoint's own origin, as the
  // library would; the Hub's redirects to its CDN must not carry them.
  const libraryToken = token?.startsWith("hf_") ? token : undefined;
  const origin = new URL(endpoint).origin;
  const failure: Failure = { repo, revision, endpoint, cacheDir, storage, token, errorCode: null };
  const hubFetch: typeof fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (token && !libraryToken && url.origin === origin) {
      const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
      if (!headers.has("authorization")) headers.set("authorization", `Bearer ${token}`);
      init = { ...init, headers };
    }
    if (opts.signal) init = { ...init, signal: opts.signal };
    const response = await fetch(input, init);
    // HubApiError keeps only the status: remember the Hub's error code to tell a missing repo from a
    // missing revision or a gated repo.
    if (!response.ok) failure.errorCode = response.headers.get("x-error-code");
    return response;
  };
  const common = { hubUrl: endpoint, accessToken: libraryToken, fetch: hubFetch };
  const policy = retryPolicy(opts.retry);
  const guard = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await withRetries(policy, fn, opts.signal);
    } catch (e) {
      if (opts.signal?.aborted) {
        if (e instanceof Error && /download aborted/.test(e.message)) throw e;
        throw new Error(`Download of ${repo} aborted${failure.file ? ` during ${failure.file}` : ""}`, {
          cause: e,
        });
      }
      throw await explainFailure(e, failure);
    }
  };

  const { sha } = await guard(() =>
    modelInfo({ ...common, name: repo, revision, additionalFields: ["sha"] })
  );
  if (!sha || !SHA.test(sha)) throw new Error(`${endpoint} gave no commit sha for ${repo}@${revision}`);
  const listing = new Map<string, ListFileEntry>();
  await guard(async () => {
    for await (const e of listFiles({ ...common, repo, revision: sha, recursive: true })) {
      if (e.type === "file") listing.set(e.path, e);
    }
  });
  if (!listing.has("config.json")) {
    throw new Error(`${repo} has no config.json at ${sha}: it is not a Transformers checkpoint.`);
  }

  const dir = join(storage, "snapshots", sha);
  const sizeOf = (path: string): number => {
    const e = listing.get(path)!;
    return e.lfs?.size ?? e.size;
  };
  const inSnapshot = async (path: string): Promise<boolean> => {
    try {
      return (await Deno.stat(join(dir, path))).size === sizeOf(path);
    } catch {
      return false;
    }
  };

  let filesDone = 0, filesTotal = 0, bytesDone = 0, bytesTotal = 0;
  const fetchFile = async (path: string, report: boolean): Promise<void> => {
    const entry = listing.get(path)!;
    const total = sizeOf(path);
    // `fetched`: bytes of this file transferred in this run (0 for a file already in the snapshot).
    const emit = (done: number, fetched = done): void => {
      if (report) {
        const bytes = bytesDone + fetched;
        opts.onProgress?.({ file: path, done, total, filesDone, filesTotal, bytesDone: bytes, bytesTotal });
      }
    };
    if (await inSnapshot(path)) {
      filesDone++;
      emit(total, 0);
      return;
    }
    // Same etag choice as the library: the name of the blob, and of the `.incomplete` being written.
    const blob = join(storage, "blobs", entry.lfs?.oid ?? entry.xetHash ?? entry.oid ?? "");
    emit(0);
    // No progress hook in the library: poll the size of the `.incomplete` file it writes to (works for
    // plain HTTP and Xet transfers alike).
    let polling = true;
    const timer = setInterval(() => {
      Deno.stat(`${blob}.incomplete`).then((s) => polling && emit(Math.min(s.size, total)), () => {});
    }, 200);
    failure.file = path;
    try {
      await Deno.mkdir(join(storage, "blobs"), { recursive: true });
      await Deno.mkdir(dirname(join(dir, path)), { recursive: true });
      const blobSize = await Deno.stat(blob).then((s) => s.size, () => null);
      if (blobSize !== total) {
        const lfsSha = entry.lfs?.oid;
        const url = `${endpoint}/${repo}/resolve/${sha}/${path.split("/").map(encodeURIComponent).join("/")}`;
        await guard(() =>
          transferBlob({
            url,
            file: path,
            blob,
            size: total,
            sha256: lfsSha && /^[0-9a-f]{64}$/.test(lfsSha) ? lfsSha : undefined,
            gitSha1: !entry.lfs && /^[0-9a-f]{40}$/.test(entry.oid ?? "") ? entry.oid : undefined,
            headers: token ? { authorization: `Bearer ${token}` } : {},
            fetch: hubFetch,
            policy: { ...policy, attempts: 1 }, // `guard` retries
            signal: opts.signal,
          })
        );
      }
      await linkBlob(blob, join(dir, path));
    } catch (e) {
      // A partial `.incomplete` is kept for the next run to resume (Range), except after ENOSPC, where the
      // space matters more. Nothing was linked into the snapshot.
      if (isDiskFull(e) || isDiskFull((e as Error)?.cause)) {
        await Deno.remove(`${blob}.incomplete`).catch(() => {});
      }
      throw e;
    } finally {
      polling = false;
      clearInterval(timer);
      failure.file = undefined;
    }
    filesDone++;
    emit(total);
    bytesDone += total;
  };

  const metadata = METADATA_FILES.filter((f) => listing.has(f));
  let weights: string[];
  if (listing.has(SAFETENSORS_INDEX)) {
    // The index (small) first: it names the shards, and so the totals. Reported as finished below.
    await fetchFile(SAFETENSORS_INDEX, false);
    weights = shardsOf(await Deno.readTextFile(join(dir, SAFETENSORS_INDEX)), `${repo}/${SAFETENSORS_INDEX}`);
    const missing = weights.filter((w) => !listing.has(w));
    if (missing.length) {
      throw new Error(
        `${repo}/${SAFETENSORS_INDEX} lists ${missing.join(", ")}, which the repo does not have.`,
      );
    }
  } else {
    weights = [...listing.keys()].filter((p) => !p.includes("/") && p.endsWith(".safetensors")).sort();
    if (weights.length === 0) {
      throw new Error(
        `${repo} has no safetensors weights at ${sha} (no ${SAFETENSORS_INDEX} nor *.safetensors): only ` +
          `safetensors checkpoints are supported.`,
      );
    }
  }
  const plan = [...metadata, ...weights];
  filesDone = listing.has(SAFETENSORS_INDEX) ? 1 : 0;
  filesTotal = plan.length + filesDone;
  bytesDone = 0;
  for (const path of plan) if (!(await inSnapshot(path))) bytesTotal += sizeOf(path);
  for (const path of plan) await fetchFile(path, true);

  // Written last: `refs/<branch>` only ever points at a complete snapshot (what offline mode trusts).
  if (!SHA.test(revision)) await writeAtomic(join(storage, "refs", revision), sha);
  const files = listing.has(SAFETENSORS_INDEX) ? [...metadata, SAFETENSORS_INDEX, ...weights] : plan;
  return { dir, sha, files };
}
