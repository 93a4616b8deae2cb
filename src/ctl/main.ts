/**
 * mcproxyctl entry point (compiled to dist/mcproxyctl). All logic is in commands.ts; this file
 * only runs it with the process arguments and exits with its code.
 */
import { runCtl } from "./commands.ts";

process.exit(await runCtl(process.argv.slice(2)));
