/** gRPC status code names ("NOT_FOUND" for 5) as used in admin logs, metrics labels and CLI errors. */
import { status as grpcStatus } from "@grpc/grpc-js";

const NAMES = Object.fromEntries(Object.entries(grpcStatus).map(([k, v]) => [v, k])) as Record<number, string>;

/** The name of a numeric gRPC status code; `CODE_<n>` for one grpc-js does not know. */
export const grpcCodeName = (code: number): string => NAMES[code] ?? `CODE_${code}`;
