/**
 * `mc-proxy` command line (citty): server, status, snapshot, check, version,
 * and `ctl`, the admin client (src/ctl/). The one compiled binary is also the
 * admin client when started under the name `mcproxyctl` (a link to it).
 * Errors are one line on stderr and a non-zero exit: 2 for usage and config
 * errors, 1 for everything else (the admin client keeps its own codes).
 */
// First, before any slow import: a SIGHUP during start-up must not kill the server.
import "./server/sighup.ts";
import { basename } from "node:path";
import { defineCommand, renderUsage, runCommand, type ArgsDef, type CommandDef } from "citty";
import { runCheck } from "./check.ts";
import { loadConfig } from "./config/load.ts";
import { CTL_NAME, statusArgs } from "./ctl/names.ts";
import { ConfigError } from "./errors.ts";
import { reexecWithJscOptions } from "./server/jsc.ts";
import { runServer } from "./server/run.ts";
import { snapshot } from "./store/snapshot.ts";
import { VERSION } from "./version.ts";

/** The exit code a command wants; citty's `run` cannot return one. */
let exitCode = 0;

const configArg = {
  config: { type: "string", alias: "c", description: "path to mc-proxy.toml", required: true },
} as const satisfies ArgsDef;

const server = defineCommand({
  meta: { name: "mc-proxy server", description: "run the proxy (SIGHUP reloads GeoIP and certificates; SIGINT/SIGTERM drain and exit)" },
  args: configArg,
  async run({ args }) {
    exitCode = await runServer(args.config);
  },
});

const status = defineCommand({
  meta: { name: "mc-proxy status", description: "ask the running instance (via the config's [grpc] admin API) for its status" },
  args: { ...configArg, ...statusArgs } as ArgsDef,
  async run({ args }) {
    const { config } = loadConfig(String(args.config));
    // The admin client (and @grpc/grpc-js with it) is loaded only by the commands that use it.
    const { runStatus } = await import("./ctl/status.ts");
    exitCode = await runStatus(config, {
      cacert: args.cacert as string | undefined,
      cert: args.cert as string | undefined,
      key: args.key as string | undefined,
      serverName: args["server-name"] as string | undefined,
      json: Boolean(args.json),
    });
  },
});

const snapshotCmd = defineCommand({
  meta: { name: "mc-proxy snapshot", description: "write a consistent copy of the database with VACUUM INTO (safe while the server runs)" },
  args: {
    ...configArg,
    output: { type: "string", alias: "o", description: "target file (default: <db dir>/backups/mc-proxy-<UTC timestamp>.db); never overwritten" },
  },
  run({ args }) {
    const { config } = loadConfig(args.config);
    const out = snapshot(config.database.path, args.output || undefined);
    process.stdout.write(out + "\n");
  },
});

const check = defineCommand({
  meta: { name: "mc-proxy check", description: "validate the config, its files and the database without changing anything; show what would be served" },
  args: { ...configArg, json: { type: "boolean", description: "print the report as one JSON object (for scripts)" } },
  run({ args }) {
    exitCode = runCheck(args.config, { json: Boolean(args.json) });
  },
});

const version = defineCommand({
  meta: { name: "mc-proxy version", description: "print the version" },
  run() {
    process.stdout.write(`mc-proxy ${VERSION}\n`);
  },
});

const main: CommandDef = defineCommand({
  meta: { name: "mc-proxy", version: VERSION, description: "TLS SNI router and edge proxy" },
  subCommands: { server, status, snapshot: snapshotCmd, check, version, ctl: () => import("./ctl/commands.ts").then((m) => m.ctlCommand) },
});

/** The deepest subcommand named by argv, for --help (`ctl` is loaded on demand). */
async function resolve(argv: string[]): Promise<CommandDef> {
  const subs = main.subCommands as Record<string, CommandDef | (() => Promise<CommandDef>)>;
  const first = argv.find((a) => !a.startsWith("-"));
  const sub = first && first in subs ? subs[first]! : main;
  return typeof sub === "function" ? sub() : sub;
}

/** The admin client, loaded only when asked for (it brings @grpc/grpc-js; `server` must not pay for it). */
async function runCtl(argv: string[], prog?: string): Promise<number> {
  const ctl = await import("./ctl/commands.ts");
  return ctl.runCtl(argv, prog);
}

const ANSI = /\x1b\[[0-9;]*m/g;

export async function runMain(argv: string[]): Promise<number> {
  // The admin client parses its own arguments (global flags anywhere, its own --help and exit codes).
  if (argv[0] === "ctl") return runCtl(argv.slice(1), "mc-proxy ctl");
  if (argv.length === 0 || argv.includes("--help") || argv.includes("-h")) {
    const text = await renderUsage(await resolve(argv));
    process.stdout.write((process.stdout.isTTY ? text : text.replace(ANSI, "")) + "\n");
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === "--version" || argv[0] === "-v") {
    process.stdout.write(`mc-proxy ${VERSION}\n`);
    return 0;
  }
  try {
    await runCommand(main, { rawArgs: argv });
    return exitCode;
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).replace(ANSI, "").replace(/\s*\n\s*/g, " ");
    process.stderr.write(`mc-proxy: ${msg}\n`);
    const usage = e instanceof ConfigError || (e instanceof Error && e.name === "CLIError");
    return usage ? 2 : 1;
  }
}

/**
 * The name this process was started under. In a `bun build --compile` binary
 * (measured with Bun 1.4.4) process.argv[0] is always "bun", argv[1] a
 * /$bunfs path, and process.execPath the resolved file (a symlink's target);
 * only process.argv0 keeps the name as typed: "mcproxyctl" via a link on PATH,
 * "./mcproxyctl", "/mcproxyctl" in the image.
 */
export function invokedName(): string {
  return basename(process.argv0);
}

if (import.meta.main) {
  const argv = process.argv.slice(2);
  // `server` runs with its own garbage-collector options (src/server/jsc.ts): set before the
  // runtime starts, so the process re-executes itself once with them (returns if it does not).
  const ctl = invokedName() === CTL_NAME;
  if (!ctl && argv[0] === "server" && !argv.includes("--help") && !argv.includes("-h")) reexecWithJscOptions();
  process.exit(await (ctl ? runCtl(argv) : runMain(argv)));
}
