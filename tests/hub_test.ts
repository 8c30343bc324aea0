/**
 * The Hub client against a fake Hub on 127.0.0.1 (tests/helpers/fake_hub.ts): cache layout shared with
 * Python's huggingface_hub, file selection, pinning, offline use, errors, interrupted transfers, shards,
 * the `download` command and `--model` resolution.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { downloadCommand } from "../src/cli/download.ts";
import { downloadModel, type DownloadProgress, explainFailure } from "../src/hub/download.ts";
import { hubCacheDir, hubEndpoint, hubOffline, hubToken } from "../src/hub/env.ts";
import { formatBytes, formatDuration, progressReporter } from "../src/hub/progress.ts";
import { resolveModelDir } from "../src/hub/resolve.ts";
import { type FakeHub, type FakeRepo, startFakeHub } from "./helpers/fake_hub.ts";
import { rejects } from "./helpers/assertions.ts";
import { fixtureDir } from "./helpers/golden.ts";

const SHA = "0123456789abcdef0123456789abcdef01234567";
const SHA2 = "fedcba9876543210fedcba9876543210fedcba98";
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const weights = await Deno.readFile(join(fixtureDir("tiny_gqa"), "weights_hf.safetensors"));
const config = await Deno.readFile(join(fixtureDir("tiny_gqa"), "config.json"));
const NEEDED = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"];

/** The tiny checkpoint plus extras that must never be fetched. */
function tinyRepo(extra: Partial<FakeRepo> = {}): FakeRepo {
  return {
    sha: SHA,
    files: {
      "config.json": config,
      "model.safetensors": weights,
      "tokenizer.json": enc('{"version":"1.0","model":{"type":"BPE","vocab":{},"merges":[]}}'),
      "tokenizer_config.json": enc('{"bos_token":"<|begin_of_text|>"}'),
      "generation_config.json": enc('{"bos_token_id":0,"eos_token_id":1}'),
      "original/consolidated.pth": new Uint8Array(4096).fill(1),
      "original/params.json": enc("{}"),
      "README.md": enc("# tiny\n"),
      "pytorch_model.bin": new Uint8Array(4096).fill(2),
      "images/example.png": new Uint8Array(64).fill(3),
    },
    ...extra,
  };
}

/** Two shards named by an index, plus a top-level safetensors the index does not list. */
function shardedRepo(): FakeRepo {
  const shard1 = weights.slice(0, 800_000), shard2 = weights.slice(800_000);
  const index = {
    metadata: { total_size: weights.length },
    weight_map: {
      "a.weight": "model-00001-of-00002.safetensors",
      "b.weight": "model-00002-of-00002.safetensors",
      "c.weight": "model-00001-of-00002.safetensors",
    },
  };
  return {
    sha: SHA2,
    files: {
      "config.json": config,
      "model.safetensors.index.json": enc(JSON.stringify(index)),
      "model-00001-of-00002.safetensors": shard1,
      "model-00002-of-00002.safetensors": shard2,
      "consolidated.safetensors": new Uint8Array(5000).fill(9),
      "preprocessor_config.json": enc("{}"),
      "chat_template.jinja": enc("{{ messages }}"),
      "original/consolidated.00.pth": new Uint8Array(1000),
    },
  };
}

const HF_VARS = [
  "HF_HOME",
  "HF_HUB_CACHE",
  "HUGGINGFACE_HUB_CACHE",
  "HF_TOKEN",
  "HUGGING_FACE_HUB_TOKEN",
  "HF_TOKEN_PATH",
  "HF_ENDPOINT",
  "HF_HUB_OFFLINE",
  "XDG_CACHE_HOME",
];

/** Runs `fn` with a fresh HF_HOME, no other HF_* variable, and a fake Hub serving `repos`. */
function hubTest(
  name: string,
  repos: Record<string, FakeRepo>,
  fn: (ctx: { hub: FakeHub; home: string; cache: string }) => Promise<void>,
): void {
  Deno.test(name, async () => {
    const saved = new Map(HF_VARS.map((v) => [v, Deno.env.get(v)]));
    const home = await Deno.makeTempDir({ prefix: "hf_home_" });
    for (const v of HF_VARS) Deno.env.delete(v);
    Deno.env.set("HF_HOME", home);
    const hub = await startFakeHub(repos);
    try {
      await fn({ hub, home, cache: join(home, "hub") });
    } finally {
      await hub.close();
      for (const [v, value] of saved) value === undefined ? Deno.env.delete(v) : Deno.env.set(v, value);
      await Deno.remove(home, { recursive: true });
    }
  });
}

async function sha256(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(data)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function listTree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const rel = prefix + e.name;
    if (e.isDirectory) out.push(...await listTree(join(dir, e.name), rel + "/"));
    else out.push(rel);
  }
  return out.sort();
}

const resolved = (hub: FakeHub): string[] =>
  hub.requests.filter((r) => r.path.includes("/resolve/") && r.range === null).map((r) => r.path);

hubTest("download: Hugging Face cache layout, only the needed files, pinned sha", {
  "org/tiny": tinyRepo(),
}, async ({ hub, cache }) => {
  const events: DownloadProgress[] = [];
  const result = await downloadModel("org/tiny", {
    endpoint: hub.url,
    cacheDir: cache,
    offline: false,
    onProgress: (p) => events.push(p),
  });
  const storage = join(cache, "models--org--tiny");
  assert.equal(result.sha, SHA);
  assert.equal(result.dir, join(storage, "snapshots", SHA));
  assert.deepEqual(result.files, [...NEEDED, "model.safetensors"]);
  assert.deepEqual(
    await listTree(storage),
    [
      ...(await listTree(join(storage, "blobs"))).map((b) => `blobs/${b}`),
      "refs/main",
      ...[...NEEDED, "model.safetensors"].sort().map((f) => `snapshots/${SHA}/${f}`),
    ].sort(),
  );
  assert.equal(await Deno.readTextFile(join(storage, "refs", "main")), SHA);

  // Snapshot entries are relative symlinks into blobs/, named by etag (sha256 for LFS), as Python does.
  const link = join(result.dir, "model.safetensors");
  assert.ok((await Deno.lstat(link)).isSymlink);
  assert.equal(await Deno.readLink(link), join("..", "..", "blobs", await sha256(weights)));
  assert.deepEqual(await Deno.readFile(link), weights);
  assert.deepEqual(await Deno.readFile(join(result.dir, "config.json")), config);
  assert.equal((await listTree(join(storage, "blobs"))).filter((b) => b.endsWith(".incomplete")).length, 0);

  // Only the needed files were transferred, all pinned to the sha; the extras were never touched.
  assert.deepEqual(
    resolved(hub).sort(),
    [...NEEDED, "model.safetensors"].sort().map((f) => `/org/tiny/resolve/${SHA}/${f}`),
  );
  assert.ok(!hub.requests.some((r) => /original|README|pytorch_model|images/.test(r.path)));
  assert.equal(hub.requests.filter((r) => r.path.startsWith("/api/models/org/tiny/revision/")).length, 1);

  // Progress: one final event per file, totals consistent.
  const final = events.at(-1)!;
  assert.deepEqual([final.filesDone, final.filesTotal], [5, 5]);
  assert.equal(final.bytesDone, final.bytesTotal);
  const total = [...NEEDED, "model.safetensors"].reduce((n, f) => n + tinyRepo().files[f].length, 0);
  assert.equal(final.bytesTotal, total);
  for (const f of result.files) {
    assert.ok(events.some((e) => e.file === f && e.done === e.total), `no final event for ${f}`);
  }
});

hubTest("download: cached files cost no transfer; sha revision and offline mode make zero requests", {
  "org/tiny": tinyRepo(),
}, async ({ hub, cache }) => {
  const opts = { endpoint: hub.url, cacheDir: cache, offline: false };
  const first = await downloadModel("org/tiny", opts);
  hub.requests.length = 0;

  const again = await downloadModel("org/tiny", opts); // a branch is resolved again, nothing transferred
  assert.deepEqual(again, first);
  assert.deepEqual(resolved(hub), []);
  assert.deepEqual(hub.requests.map((r) => r.path.split("/").slice(0, 6).join("/")), [
    "/api/models/org/tiny/revision",
    "/api/models/org/tiny/tree",
  ]);

  hub.requests.length = 0;
  assert.deepEqual(await downloadModel("org/tiny", { ...opts, revision: SHA }), first);
  assert.deepEqual(await downloadModel("org/tiny", { ...opts, offline: true }), first);
  assert.deepEqual(await downloadModel("org/tiny", { ...opts, offline: true, revision: SHA }), first);
  Deno.env.set("HF_HUB_OFFLINE", "1");
  assert.deepEqual(await downloadModel("org/tiny", { endpoint: hub.url, cacheDir: cache }), first);
  assert.equal(hub.requests.length, 0);

  // Offline, a revision never downloaded is an error, still without a request.
  await rejects(
    downloadModel("org/tiny", { endpoint: hub.url, cacheDir: cache, revision: "dev" }),
    /not in the cache/,
    /HF_HUB_OFFLINE=1/,
  );
  assert.equal(hub.requests.length, 0);
});

hubTest("offline: an uncached repo is an error, with zero requests", {
  "org/tiny": tinyRepo(),
}, async ({ hub, cache }) => {
  Deno.env.set("HF_HUB_OFFLINE", "1");
  await rejects(
    downloadModel("org/tiny", { endpoint: hub.url, cacheDir: cache }),
    /org\/tiny/,
    /not in the cache/,
    /HF_HUB_OFFLINE=1/,
  );
  await rejects(resolveModelDir("org/tiny", { endpoint: hub.url, cacheDir: cache }), /not in the cache/);
  assert.equal(hub.requests.length, 0);
});

hubTest("gated repo: 401 without a token, 403 with a wrong one, works with the right one", {
  "org/gated": tinyRepo({ gated: true, token: "hf_secret" }),
  "org/gated-mirror": tinyRepo({ gated: true, token: "mirror-token-without-prefix" }),
}, async ({ hub, cache }) => {
  const opts = { endpoint: hub.url, cacheDir: cache, offline: false };
  const page = `${hub.url}/org/gated`;
  const noToken = await rejects(downloadModel("org/gated", opts), /gated/, /HF_TOKEN/);
  assert.ok(noToken.includes(`accept the licence on ${page}`), noToken);
  const wrong = await rejects(downloadModel("org/gated", { ...opts, token: "hf_wrong" }), /403/, /HF_TOKEN/);
  assert.ok(wrong.includes(`accept the licence on ${page}`), wrong);
  assert.deepEqual(
    await listTree(join(cache, "models--org--gated")).then((f) =>
      f.filter((p) => p.startsWith("snapshots/"))
    ),
    [],
  );

  const ok = await downloadModel("org/gated", { ...opts, token: "hf_secret" });
  assert.deepEqual(await Deno.readFile(join(ok.dir, "model.safetensors")), weights);
  assert.ok(
    hub.requests.filter((r) => r.path.includes("/resolve/")).some((r) =>
      r.authorization === "Bearer hf_secret"
    ),
  );

  // A token without the hf_ prefix (which the library refuses) is sent by our own fetch wrapper.
  hub.requests.length = 0;
  const mirror = await downloadModel("org/gated-mirror", { ...opts, token: "mirror-token-without-prefix" });
  assert.deepEqual(await Deno.readFile(join(mirror.dir, "model.safetensors")), weights);
  assert.ok(hub.requests.every((r) => r.authorization === "Bearer mirror-token-without-prefix"));
});

hubTest("unknown repo, unknown revision, repo without safetensors: clear errors", {
  "org/tiny": tinyRepo(),
  "org/binonly": { sha: SHA, files: { "config.json": config, "pytorch_model.bin": new Uint8Array(10) } },
}, async ({ hub, cache }) => {
  const opts = { endpoint: hub.url, cacheDir: cache, offline: false };
  await rejects(downloadModel("org/nope", opts), /Repository org\/nope .*not found/, /check the spelling/);
  await rejects(
    downloadModel("org/tiny", { ...opts, revision: "no-such-branch" }),
    /Revision "no-such-branch" not found/,
  );
  await rejects(downloadModel("org/binonly", opts), /no safetensors weights/);
  await rejects(downloadModel("not a repo", opts), /not a Hub model id/);
  await rejects(resolveModelDir("./no/such/folder", opts), /neither an existing folder nor a Hub model id/);
});

hubTest("no network: the error suggests HF_HUB_OFFLINE=1, and says so when the model is cached", {
  "org/tiny": tinyRepo(),
}, async ({ hub, cache }) => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadEndpoint = `http://127.0.0.1:${closed.addr.port}`;
  closed.close();
  const opts = { endpoint: deadEndpoint, cacheDir: cache, offline: false };
  await rejects(
    downloadModel("org/tiny", opts),
    /Cannot reach/,
    /If the model is already in the cache, set HF_HUB_OFFLINE=1/,
  );
  await downloadModel("org/tiny", { ...opts, endpoint: hub.url });
  await rejects(
    downloadModel("org/tiny", opts),
    /Cannot reach/,
    /already in the cache .*set HF_HUB_OFFLINE=1/,
  );
});

hubTest("interrupted download: nothing half-written in snapshots/, a rerun completes", {
  "org/tiny": tinyRepo(),
}, async ({ hub, cache }) => {
  const opts = { endpoint: hub.url, cacheDir: cache, offline: false };
  const storage = join(cache, "models--org--tiny");
  hub.cut("model.safetensors", 300_000);
  // One try only (retries and resumption are covered by hub_faults_test.ts).
  await rejects(
    downloadModel("org/tiny", { ...opts, retry: { attempts: 1 } }),
    /model\.safetensors/,
    /interrupted/,
    /run again/,
  );

  const snapshot = join(storage, "snapshots", SHA);
  const present = await listTree(snapshot);
  assert.ok(!present.includes("model.safetensors"));
  for (const f of present) assert.deepEqual(await Deno.readFile(join(snapshot, f)), tinyRepo().files[f]);
  for (const b of await listTree(join(storage, "blobs"))) {
    // The partial file stays as `.incomplete` only, for the next run to resume.
    assert.notEqual(b, await sha256(weights), "a partial blob was kept");
  }
  await assert.rejects(Deno.stat(join(storage, "refs", "main")), Deno.errors.NotFound);
  await rejects(downloadModel("org/tiny", { ...opts, offline: true }), /not in the cache/);

  hub.requests.length = 0;
  const result = await downloadModel("org/tiny", opts);
  assert.deepEqual(await Deno.readFile(join(result.dir, "model.safetensors")), weights);
  // The rest was kept, and the cut file resumed where it stopped (a Range request).
  assert.deepEqual(
    hub.requests.filter((r) => r.path.includes("/resolve/")).map((r) => [r.path, r.range]),
    [[`/org/tiny/resolve/${SHA}/model.safetensors`, "bytes=300000-"]],
  );
  assert.equal(await Deno.readTextFile(join(storage, "refs", "main")), SHA);
});

hubTest("sharded repo: the index and the shards it lists, nothing else", {
  "org/sharded": shardedRepo(),
}, async ({ hub, cache }) => {
  const events: DownloadProgress[] = [];
  const result = await downloadModel("org/sharded", {
    endpoint: hub.url,
    cacheDir: cache,
    offline: false,
    onProgress: (p) => events.push(p),
  });
  const expected = [
    "config.json",
    "chat_template.jinja",
    "preprocessor_config.json",
    "model.safetensors.index.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
  ];
  assert.deepEqual(result.files, expected);
  assert.deepEqual(await listTree(result.dir), [...expected].sort());
  assert.deepEqual(resolved(hub).sort(), expected.map((f) => `/org/sharded/resolve/${SHA2}/${f}`).sort());
  const shards = shardedRepo().files;
  for (const f of expected) assert.deepEqual(await Deno.readFile(join(result.dir, f)), shards[f]);
  const final = events.at(-1)!;
  assert.deepEqual([final.filesDone, final.filesTotal], [6, 6]);

  hub.requests.length = 0;
  assert.deepEqual(await downloadModel("org/sharded", { cacheDir: cache, offline: true }), result);
  assert.equal(await resolveModelDir("org/sharded", { cacheDir: cache, offline: true }), result.dir);
  assert.equal(hub.requests.length, 0);
});

hubTest("downloadCommand: HF_ENDPOINT, HF_HOME and HF_TOKEN from the environment, the path on stdout", {
  "org/gated": tinyRepo({ gated: true, token: "hf_secret" }),
}, async ({ hub, home }) => {
  Deno.env.set("HF_ENDPOINT", hub.url + "/");
  Deno.env.set("HF_TOKEN", "hf_secret");
  const printed: unknown[] = [];
  const stdout = async (run: () => Promise<void>): Promise<void> => {
    const log = console.log;
    console.log = (...args: unknown[]): void => void printed.push(...args);
    try {
      await run();
    } finally {
      console.log = log;
    }
  };
  await stdout(() => downloadCommand("org/gated", {}));
  const dir = join(home, "hub", "models--org--gated", "snapshots", SHA);
  assert.deepEqual(printed, [dir]);
  assert.deepEqual(await Deno.readFile(join(dir, "model.safetensors")), weights);
  assert.ok(
    hub.requests.filter((r) => r.path.includes("/resolve/")).every((r) =>
      r.authorization === "Bearer hf_secret"
    ),
  );

  // HF_HUB_OFFLINE=1 through the command: no request, same path.
  Deno.env.set("HF_HUB_OFFLINE", "1");
  hub.requests.length = 0;
  await stdout(() => downloadCommand("org/gated", { revision: "main" }));
  assert.deepEqual(printed, [dir, dir]);
  assert.equal(hub.requests.length, 0);

  // Without a token, into an empty cache, the command fails with the gated message.
  Deno.env.delete("HF_HUB_OFFLINE");
  Deno.env.delete("HF_TOKEN");
  Deno.env.set("HF_HOME", join(home, "other"));
  await rejects(downloadCommand("org/gated", {}), /accept the licence on .*\/org\/gated and set HF_TOKEN/);
});

hubTest("resolveModelDir: a local folder as is, a Hub id through the cache", {
  "org/tiny": tinyRepo(),
}, async ({ hub, home }) => {
  assert.equal(await resolveModelDir(home), home);
  await Deno.writeTextFile(join(home, "file.txt"), "x");
  await rejects(resolveModelDir(join(home, "file.txt")), /is a file/);
  Deno.env.set("HF_ENDPOINT", hub.url);
  const dir = await resolveModelDir("org/tiny");
  assert.equal(dir, join(home, "hub", "models--org--tiny", "snapshots", SHA));
  assert.deepEqual(await Deno.readFile(join(dir, "config.json")), config);
});

Deno.test("env: cache dir, endpoint, token and offline flag follow huggingface_hub's rules", () => {
  const vars = [...HF_VARS, "HOME"];
  const saved = new Map(vars.map((v) => [v, Deno.env.get(v)]));
  try {
    for (const v of HF_VARS) Deno.env.delete(v);
    Deno.env.set("HOME", "/home/u");
    assert.equal(hubCacheDir(), "/home/u/.cache/huggingface/hub");
    Deno.env.set("XDG_CACHE_HOME", "/xdg");
    assert.equal(hubCacheDir(), "/xdg/huggingface/hub");
    Deno.env.set("HF_HOME", "/hf");
    assert.equal(hubCacheDir(), "/hf/hub");
    Deno.env.set("HF_HUB_CACHE", "/cache");
    assert.equal(hubCacheDir(), "/cache");
    assert.equal(hubEndpoint(), "https://huggingface.co");
    Deno.env.set("HF_ENDPOINT", "https://mirror.example/");
    assert.equal(hubEndpoint(), "https://mirror.example");
    assert.equal(hubToken(), undefined);
    Deno.env.set("HF_TOKEN", "hf_abc\n");
    assert.equal(hubToken(), "hf_abc");
    assert.equal(hubOffline(), false);
    for (
      const [value, expected] of [["1", true], ["TRUE", true], ["yes", true], ["0", false], [
        "",
        false,
      ]] as const
    ) {
      Deno.env.set("HF_HUB_OFFLINE", value);
      assert.equal(hubOffline(), expected, value);
    }
  } finally {
    for (const [v, value] of saved) value === undefined ? Deno.env.delete(v) : Deno.env.set(v, value);
  }
});

Deno.test("env: the token saved by `hf auth login` ($HF_HOME/token) is used when HF_TOKEN is unset", async () => {
  const saved = new Map(HF_VARS.map((v) => [v, Deno.env.get(v)]));
  const home = await Deno.makeTempDir();
  try {
    for (const v of HF_VARS) Deno.env.delete(v);
    Deno.env.set("HF_HOME", home);
    await Deno.writeTextFile(join(home, "token"), "hf_saved\n");
    assert.equal(hubToken(), "hf_saved");
  } finally {
    for (const [v, value] of saved) value === undefined ? Deno.env.delete(v) : Deno.env.set(v, value);
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("disk full: ENOSPC becomes an error that says to free space or move the cache", async () => {
  const enospc = Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" });
  const e = await explainFailure(enospc, {
    repo: "org/tiny",
    revision: "main",
    endpoint: "https://huggingface.co",
    cacheDir: "/c",
    storage: "/c/models--org--tiny",
    errorCode: null,
    file: "model.safetensors",
  });
  assert.match(e.message, /Disk full while downloading model\.safetensors into \/c/);
  assert.match(e.message, /HF_HUB_CACHE/);
  assert.equal(e.cause, enospc);
});

Deno.test("progress: plain lines off a terminal; bytes, speed and ETA redrawn with \\r on one", () => {
  const sink = (
    terminal: boolean,
  ): { out: string[]; writeSync(p: Uint8Array): number; isTerminal(): boolean } => {
    const out: string[] = [];
    return {
      out,
      writeSync: (p) => (out.push(new TextDecoder().decode(p)), p.length),
      isTerminal: () => terminal,
    };
  };
  const run = (terminal: boolean): string => {
    const s = sink(terminal);
    let t = 0;
    const report = progressReporter(s, () => t);
    const base = { filesTotal: 2, bytesTotal: 2_000_000 };
    report({ ...base, file: "config.json", done: 0, total: 1000, filesDone: 0, bytesDone: 0 });
    t = 1000;
    report({ ...base, file: "config.json", done: 1000, total: 1000, filesDone: 1, bytesDone: 1000 });
    t = 2000;
    report({
      ...base,
      file: "model.safetensors",
      done: 999_000,
      total: 1_999_000,
      filesDone: 1,
      bytesDone: 1_000_000,
    });
    t = 3000;
    report({
      ...base,
      file: "model.safetensors",
      done: 1_999_000,
      total: 1_999_000,
      filesDone: 2,
      bytesDone: 2_000_000,
    });
    return s.out.join("");
  };
  const plain = run(false);
  assert.equal(
    plain,
    "fetched config.json (1.0 kB) [1/2]\nfetched model.safetensors (2.0 MB) [2/2]\n" +
      "fetched 2 files, 2.0 MB in 3s (666.7 kB/s)\n",
  );
  const tty = run(true);
  assert.ok(tty.includes("\r"));
  assert.match(tty, /\[2\/2\] model\.safetensors {2}1\.0 MB \/ 2\.0 MB \(50%\) {2}[\d.]+ kB\/s {2}ETA 2s/);
  assert.ok(tty.endsWith("\n"));
  assert.equal(formatBytes(1_500_000_000), "1.5 GB");
  assert.equal(formatDuration(3725), "1h02m");
  assert.equal(formatDuration(187), "3m07s");
});
