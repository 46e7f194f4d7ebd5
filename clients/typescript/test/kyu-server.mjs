// Starts a real `kyu serve` for a test: a fresh SQLite file in a temp
// directory, a kyu.toml with command kinds the tests use, the HTTP API on a
// port the OS picks (read back from kyu's start line), and tokens made with
// `kyu tokens create`. The binary: KYU_BIN, else the workspace's
// target/debug/kyu (`cargo build -p kyu-cli`).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

export const KYU_BIN = process.env.KYU_BIN ?? resolve(here, "../../../target/debug/kyu");

const DEFAULT_TOML = `
[queues.default]
concurrency = 4

# result = the args (stdin), so a test sees its job run end to end
[jobs.echo]
command = ["sh", "-c", "cat; echo"]
result_from_stdout = true

[jobs.fail]
command = ["sh", "-c", "echo boom >&2; exit 3"]

[jobs.sleep]
command = ["sleep", "60"]
stop_grace = "1s"
`;

/**
 * Starts kyu serve on `database` (default a fresh SQLite file in its own
 * directory); returns { url, token(scopes, opts), admin, stop(), dir }.
 */
export async function startKyu({ toml = DEFAULT_TOML, env = {}, database } = {}) {
  if (!existsSync(KYU_BIN)) {
    throw new Error(`kyu binary not found at ${KYU_BIN}: build it (cargo build -p kyu-cli) or set KYU_BIN`);
  }
  const dir = mkdtempSync(join(tmpdir(), "kyu-ts-"));
  const db = database ?? `sqlite://${join(dir, "kyu.db")}`;
  writeFileSync(join(dir, "kyu.toml"), `database = "${db}"\n${toml}`);
  const cfg = ["--config", join(dir, "kyu.toml")];
  let n = 0;
  const token = (scopes = ["admin"], { queues, expires } = {}) => {
    const args = [...cfg, "tokens", "create", "--json", "--name", `t${n++}`];
    for (const s of scopes) args.push("--scope", s);
    if (queues) args.push("--queues", queues);
    if (expires) args.push("--expires", expires);
    const out = execFileSync(KYU_BIN, args, { cwd: dir, encoding: "utf8" });
    return JSON.parse(out).token;
  };
  const admin = token(["admin"]);
  const child = spawn(KYU_BIN, [...cfg, "serve", "--http", "127.0.0.1:0"], {
    cwd: dir,
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  // kyu prints its start line (with the port it got) on stderr
  let log = "";
  const url = await new Promise((resolveUrl, reject) => {
    const onData = (d) => {
      log += d;
      const m = /http (\d+\.\d+\.\d+\.\d+:\d+)/.exec(log);
      if (m) resolveUrl(`http://${m[1]}`);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => reject(new Error(`kyu serve exited (${code}) before listening: ${log}`)));
  });
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return { url, admin, token, stop, dir, child, bin: KYU_BIN, config: join(dir, "kyu.toml") };
}
