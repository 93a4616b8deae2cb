/**
 * mcproxyctl's command tree (citty) and `runCtl(argv, prog)`, which runs one command and returns the
 * exit code: 0 ok, 1 server error (`error: NOT_FOUND: …` on stderr), 2 usage error, 3 cannot
 * connect. Output goes to stdout: aligned tables, or with `--json` one JSON document.
 * Connection flags (--socket | --addr, --cacert, --cert, --key, --server-name) and --json are
 * accepted anywhere on the command line.
 * There is no separate binary: `mc-proxy ctl …` and a `mcproxyctl` link to mc-proxy both end
 * here (src/main.ts); `prog` is the name usage text and error hints show.
 */
import { defineCommand, parseArgs, renderUsage, runCommand, type ArgsDef, type CommandDef, type CommandMeta } from "citty";
import { AdminClient, type AdminConnectOptions } from "../admin/client.ts";
import { FIREWALL_NAMES, MODE_NAMES, POLICY_NAMES, PROTOCOL_NAMES, firewallTypeProto, modeProto, policyTypeProto, protocolProto } from "../admin/convert.ts";
import type { BackendProtocol, FirewallRuleType, PolicyType, RouteMode } from "../config/types.ts";
import { VERSION } from "../version.ts";
import {
  firewallRuleJson,
  listenerJson,
  listenersTable,
  maxText,
  policiesTable,
  policyJson,
  routeJson,
  routesTable,
  rulesTable,
  type Json,
} from "./format.ts";
import { describeFailure, formatStatus, statusJson } from "./status.ts";

export const DEFAULT_SOCKET = "/srv/mc-proxy/mc-proxy.sock";

import { CTL_NAME } from "./names.ts";

/** A command-line mistake: exit 2 with usage. */
class UsageError extends Error {}

const globalArgs = {
  socket: { type: "string", description: `admin unix socket (default ${DEFAULT_SOCKET})`, valueHint: "path" },
  addr: { type: "string", description: "admin TCP address (TLS), instead of --socket", valueHint: "host:port" },
  cacert: { type: "string", description: "TCP: CA bundle that signed the server certificate (default: system roots)", valueHint: "pem" },
  cert: { type: "string", description: "TCP with mTLS: client certificate", valueHint: "pem" },
  key: { type: "string", description: "TCP with mTLS: client key", valueHint: "pem" },
  "server-name": { type: "string", description: "TCP: name expected in the server certificate (default: host of --addr)" },
  json: { type: "boolean", description: "print one JSON document instead of a table" },
} as const satisfies ArgsDef;

type Globals = { conn: AdminConnectOptions; json: boolean; target: string };

/** Connection settings from the whole command line (they may precede the subcommand). */
function readGlobals(argv: string[]): Globals {
  const g = parseArgs(argv, globalArgs) as Record<string, unknown>;
  const str = (k: string) => (typeof g[k] === "string" ? (g[k] as string) : undefined);
  const socket = str("socket");
  const addr = str("addr");
  if (socket && addr) throw new UsageError("use either --socket or --addr, not both");
  if (!!str("cert") !== !!str("key")) throw new UsageError("--cert and --key go together");
  if (addr) {
    return { conn: { addr, caCert: str("cacert"), tlsCert: str("cert"), tlsKey: str("key"), serverName: str("server-name") }, json: g.json === true, target: addr };
  }
  const path = socket ?? DEFAULT_SOCKET;
  // A socket path that looks like host:port would be dialled as TCP: force the unix form.
  return { conn: { addr: `unix:${path}` }, json: g.json === true, target: path };
}

type Out = { json: Json; text: string };
type Action = (client: AdminClient, args: Record<string, unknown>) => Promise<Out>;

let globals: Globals | null = null;

/** Rejects options this command does not define (citty itself ignores them) and stray words. */
function checkKnown(def: ArgsDef, args: Record<string, unknown>): void {
  const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  const known = new Set<string>();
  for (const name of Object.keys(def)) for (const n of [name, camel(name), kebab(name)]) known.add(n);
  for (const k of Object.keys(args)) {
    if (k === "_") continue;
    if (!known.has(k)) throw new UsageError(`unknown option --${kebab(k)}`);
  }
  const extra = (args._ as string[] | undefined) ?? [];
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
}

/** A leaf command: its own args plus the global ones; runs `action` against the admin API. */
function leaf<const A extends ArgsDef>(description: string, args: A, action: Action): CommandDef {
  const all = { ...args, ...globalArgs } as ArgsDef;
  return defineCommand({
    meta: { description },
    args: all,
    run: async ({ args: parsed }) => {
      checkKnown(all, parsed as Record<string, unknown>);
      const g = globals!;
      let client: AdminClient;
      try {
        client = new AdminClient(g.conn);
      } catch (e) {
        throw new UsageError((e as Error).message); // unreadable PEM files and the like
      }
      try {
        const out = await action(client, parsed as Record<string, unknown>);
        process.stdout.write(g.json ? JSON.stringify(out.json) + "\n" : out.text);
      } finally {
        client.close();
      }
    },
  });
}

function group(description: string, subCommands: Record<string, CommandDef>): CommandDef {
  return defineCommand({ meta: { description }, args: globalArgs as ArgsDef, subCommands });
}

const listener = { listener: { type: "string", required: true, description: 'listener address exactly as configured (":443")' } } as const;
const hostname = { hostname: { type: "string", required: true, description: "route hostname" } } as const;
const s = (a: Record<string, unknown>, k: string): string => (typeof a[k] === "string" ? (a[k] as string) : "");
const b = (a: Record<string, unknown>, k: string): boolean => a[k] === true;

/** The API's max_connections is an int32. */
const MAX_CONNECTIONS_LIMIT = 2 ** 31 - 1;

function parseMax(v: string): number {
  if (!/^\d+$/.test(v)) throw new UsageError(`--max must be a whole number >= 0 (0 = unlimited), got "${v}"`);
  const n = Number(v);
  if (n > MAX_CONNECTIONS_LIMIT) throw new UsageError(`--max must be at most ${MAX_CONNECTIONS_LIMIT} (0 = unlimited), got "${v}"`);
  return n;
}

const routes = group("list, add (upsert) and remove routes", {
  list: leaf("list the routes of a listener", listener, async (c, a) => {
    const rs = await c.listRoutes(s(a, "listener"));
    return { json: { listener: s(a, "listener"), routes: rs.map(routeJson) }, text: routesTable(rs) };
  }),
  add: leaf(
    "add a route, or replace every setting of an existing one (policies are kept)",
    {
      ...listener,
      ...hostname,
      backend: { type: "string", required: true, description: "backend host:port" },
      mode: { type: "enum", options: MODE_NAMES, default: "l4", description: "l4 (passthrough) or l7 (terminate TLS)" },
      "tls-cert": { type: "string", description: "l7: certificate chain PEM file (path on the server)" },
      "tls-key": { type: "string", description: "l7: private key PEM file (path on the server)" },
      "backend-tls": { type: "boolean", description: "l7: TLS towards the backend" },
      "backend-protocol": { type: "enum", options: PROTOCOL_NAMES, default: "auto", description: "l7: auto, h2 or http1" },
      "backend-tls-verify": { type: "boolean", description: "l7: verify the backend certificate" },
      "backend-tls-ca": { type: "string", description: "l7: CA bundle for that check (default: system roots)" },
      "backend-tls-server-name": { type: "string", description: "l7: SNI / name checked towards the backend" },
      "send-proxy-protocol": { type: "boolean", description: "prepend a PROXY v2 header towards the backend" },
    },
    async (c, a) => {
      const r = await c.addRoute(s(a, "listener"), {
        hostname: s(a, "hostname"),
        backend: s(a, "backend"),
        mode: modeProto(s(a, "mode") as RouteMode),
        tlsCert: s(a, "tls-cert"),
        tlsKey: s(a, "tls-key"),
        backendTls: b(a, "backend-tls"),
        backendProtocol: protocolProto(s(a, "backend-protocol") as BackendProtocol),
        backendTlsVerify: b(a, "backend-tls-verify"),
        backendTlsCa: s(a, "backend-tls-ca"),
        backendTlsServerName: s(a, "backend-tls-server-name"),
        sendProxyProtocol: b(a, "send-proxy-protocol"),
        l7Policies: [],
      });
      const j = routeJson(r) as { mode: string };
      return { json: { listener: s(a, "listener"), route: routeJson(r) }, text: `route ${r.hostname} on ${s(a, "listener")} -> ${r.backend} (${j.mode})\n` };
    },
  ),
  remove: leaf("remove a route", { ...listener, ...hostname }, async (c, a) => {
    await c.removeRoute(s(a, "listener"), s(a, "hostname"));
    return { json: { removed: { listener: s(a, "listener"), hostname: s(a, "hostname") } }, text: `removed route ${s(a, "hostname")} from ${s(a, "listener")}\n` };
  }),
});

const ruleArgs = {
  type: { type: "enum", options: FIREWALL_NAMES, required: true, description: "ip, cidr or country" },
  value: { type: "string", required: true, description: "192.0.2.1, 198.51.100.0/24 or KP" },
} as const;
const ruleOf = (a: Record<string, unknown>) => ({ type: firewallTypeProto(s(a, "type") as FirewallRuleType), value: s(a, "value") });

const firewall = group("list, add and remove firewall rules (global, all listeners)", {
  list: leaf("list the firewall rules", {}, async (c) => {
    const rules = await c.getFirewallRules();
    return { json: { rules: rules.map(firewallRuleJson) }, text: rulesTable(rules) };
  }),
  add: leaf("block an IP, a CIDR or a country", ruleArgs, async (c, a) => {
    const r = await c.addFirewallRule(ruleOf(a));
    const j = firewallRuleJson(r) as { type: string; value: string };
    return { json: { rule: j }, text: `added firewall rule ${j.type} ${j.value}\n` };
  }),
  remove: leaf("remove a firewall rule", ruleArgs, async (c, a) => {
    await c.removeFirewallRule(ruleOf(a));
    return { json: { removed: { type: s(a, "type"), value: s(a, "value") } }, text: `removed firewall rule ${s(a, "type")} ${s(a, "value")}\n` };
  }),
});

const policyArgs = {
  ...listener,
  ...hostname,
  type: { type: "enum", options: POLICY_NAMES, required: true, description: "block_user_agent or require_header" },
  value: { type: "string", required: true, description: "User-Agent substring, or header name" },
} as const;
const policyOf = (a: Record<string, unknown>) => ({ type: policyTypeProto(s(a, "type") as PolicyType), value: s(a, "value") });

const policies = group("list, add and remove L7 policies of a route", {
  list: leaf("list a route's policies in evaluation order", { ...listener, ...hostname }, async (c, a) => {
    const ps = await c.listL7Policies(s(a, "listener"), s(a, "hostname"));
    return { json: { listener: s(a, "listener"), hostname: s(a, "hostname"), policies: ps.map(policyJson) }, text: policiesTable(ps) };
  }),
  add: leaf("append a policy to a route", policyArgs, async (c, a) => {
    const p = await c.addL7Policy(s(a, "listener"), s(a, "hostname"), policyOf(a));
    return { json: { policy: policyJson(p) }, text: `added policy ${s(a, "type")} ${p.value} to ${s(a, "hostname")} on ${s(a, "listener")}\n` };
  }),
  remove: leaf("remove a policy from a route", policyArgs, async (c, a) => {
    await c.removeL7Policy(s(a, "listener"), s(a, "hostname"), policyOf(a));
    return {
      json: { removed: { listener: s(a, "listener"), hostname: s(a, "hostname"), type: s(a, "type"), value: s(a, "value") } },
      text: `removed policy ${s(a, "type")} ${s(a, "value")} from ${s(a, "hostname")} on ${s(a, "listener")}\n`,
    };
  }),
});

const listeners = group("list listeners and set their connection limit", {
  list: leaf("list listeners", {}, async (c) => {
    const ls = await c.listListeners();
    return { json: { listeners: ls.map(listenerJson) }, text: listenersTable(ls) };
  }),
  "set-max-connections": leaf(
    "cap a listener's concurrent connections (0 = unlimited); open connections are not cut",
    { ...listener, max: { type: "string", required: true, description: "maximum, 0 = unlimited", valueHint: "n" } },
    async (c, a) => {
      const l = await c.setListenerMaxConnections(s(a, "listener"), parseMax(s(a, "max")));
      return { json: { listener: listenerJson(l) }, text: `listener ${l.addr} max connections ${maxText(l.maxConnections)}\n` };
    },
  ),
});

const status = leaf("show version, uptime and per-listener connections", {}, async (c) => {
  const st = await c.getStatus();
  return { json: statusJson(st), text: formatStatus(st) };
});

export const ctlCommand: CommandDef = defineCommand({
  meta: { name: CTL_NAME, version: VERSION, description: "admin client for a running mc-proxy (gRPC over a unix socket or TLS)" },
  args: globalArgs as ArgsDef,
  subCommands: { routes, firewall, policies, listeners, status },
});

/** Usage lines show the full command path as invoked ("mcproxyctl routes add", "mc-proxy ctl routes add"). */
function nameTree(cmd: CommandDef, path: string): void {
  (cmd.meta as CommandMeta).name = path;
  for (const [n, sub] of Object.entries((cmd.subCommands ?? {}) as Record<string, CommandDef>)) nameTree(sub, `${path} ${n}`);
}
nameTree(ctlCommand, CTL_NAME);

/** The command the argv names (deepest match), for --help and usage errors. */
function resolve(argv: string[]): CommandDef {
  let cmd: CommandDef = ctlCommand;
  const valueFlags = new Set(Object.entries(globalArgs).filter(([, d]) => d.type === "string").map(([n]) => `--${n}`));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith("-")) {
      if (!a.includes("=") && valueFlags.has(a)) i++;
      continue;
    }
    const subs = cmd.subCommands as Record<string, CommandDef> | undefined;
    if (!subs || !(a in subs)) break;
    cmd = subs[a]!;
  }
  return cmd;
}

const ANSI = /\x1b\[[0-9;]*m/g;
/** citty colours its usage text; keep colours only for a terminal. */
const plain = (text: string, tty: boolean | undefined): string => (tty ? text : text.replace(ANSI, ""));

/**
 * Runs mcproxyctl with `argv` (without the program name); returns the exit code. `prog` names the
 * command in usage text and error hints: "mcproxyctl" (the link) or "mc-proxy ctl" (the subcommand);
 * everything else — arguments, output, exit codes — is the same for both.
 */
export async function runCtl(argv: string[], prog: string = CTL_NAME): Promise<number> {
  nameTree(ctlCommand, prog);
  if (argv.includes("--help") || argv.includes("-h") || argv.length === 0) {
    process.stdout.write(plain(await renderUsage(resolve(argv)), process.stdout.isTTY) + "\n");
    return 0;
  }
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-v")) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  try {
    globals = readGlobals(argv);
    await runCommand(ctlCommand, { rawArgs: argv });
    return 0;
  } catch (e) {
    // citty's own argument errors are CLIError (not exported): recognise them by name.
    if (e instanceof UsageError || (e instanceof Error && e.name === "CLIError")) {
      const name = (resolve(argv).meta as CommandMeta).name;
      process.stderr.write(`error: ${e.message.replace(ANSI, "")} (see: ${name} --help)\n`);
      return 2;
    }
    const f = describeFailure(e, globals?.target ?? "?");
    process.stderr.write(f.line + "\n");
    return f.code;
  }
}
