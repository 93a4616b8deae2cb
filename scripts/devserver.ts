/**
 * `npm run devserver`: runs mc-proxy from source on a local default config.
 * On first run it creates `srv/` with `srv/mc-proxy.toml` (a listener on
 * 127.0.0.1:8443, the database `srv/mc-proxy.db`, the admin socket
 * `srv/mc-proxy.sock`, metrics on 127.0.0.1:9091); later runs reuse it.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { runMain } from "../src/main.ts";

const srv = resolve(import.meta.dir, "..", "srv");
const cfg = join(srv, "mc-proxy.toml");

const DEFAULT_CONFIG = `# Local development config, created by \`npm run devserver\`.
# The database (srv/mc-proxy.db) is seeded from this file on first start only;
# afterwards change routes with mcproxyctl --socket srv/mc-proxy.sock.
[database]
path = "mc-proxy.db"

[[listeners]]
addr = "127.0.0.1:8443"

  [[listeners.routes]]
  hostname = "localhost"
  backend = "127.0.0.1:9443"

[grpc]
addr = "mc-proxy.sock"

[proxy]
shutdown_timeout = "5s"

[log]
level = "info"

[metrics]
addr = "127.0.0.1:9091"
`;

if (!existsSync(cfg)) {
  mkdirSync(srv, { recursive: true, mode: 0o700 });
  writeFileSync(cfg, DEFAULT_CONFIG, { mode: 0o600 });
  process.stderr.write(`devserver: created ${cfg}\n`);
}
process.exit(await runMain(["server", "-c", cfg, ...process.argv.slice(2)]));
