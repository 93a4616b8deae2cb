/**
 * HPACK (RFC 7541): the header compression of HTTP/2. Pure: no I/O, no
 * timers; one HpackDecoder per connection for the peer's header blocks and
 * one HpackEncoder for ours. Both keep a dynamic table that must stay in step
 * with the peer's, so every header block of a connection must go through the
 * same instance, in the order the frames arrived / leave.
 *
 * Header lists are flat string arrays `[name0, value0, name1, value1, …]`.
 * Strings are latin1: one char per octet, so any octet sequence round-trips
 * and `s.length` is the octet count RFC 7541 §4.1 sizes are made of.
 *
 * Decoding never throws. A malformed block gives an H2Error with scope
 * "connection" and code COMPRESSION_ERROR (RFC 9113 §4.3); after that the
 * decoder's table is undefined and every later call returns the same error.
 *
 * The header-list cap (SETTINGS_MAX_HEADER_LIST_SIZE, counted as name +
 * value + 32 per field, RFC 9113 §6.5.2) is enforced while decoding: past it
 * the decoder stops storing fields but goes on decoding, because the block
 * may still insert entries the next blocks refer to (RFC 9113 §4.3: "process
 * … to maintain the field section compression state"). The result says
 * `overflow: true` and holds no fields; the session turns that into a stream
 * error (or a 431) and the connection lives on, like nghttp2 with nghttpx's
 * header-size check. An HPACK bomb — thousands of 1-byte references to a 4 KiB
 * entry — thus costs a counter increment per reference and no memory. The
 * compressed block itself is bounded by the frame layer
 * (H2_MAX_HEADER_BLOCK_BYTES), which bounds the decoding work.
 */

import { asBuffer, ByteWriter, latin1 } from "./bytes.ts";
import { sameBytes } from "../h1/bytes.ts";
import { connError, H2_ERROR, H2Error } from "./errors.ts";
import { isValidFieldName, isValidFieldValue } from "./headers.ts";
import { huffmanDecode, huffmanEncode, huffmanLength } from "./huffman.ts";
import { H2_HPACK_BLOCK_MEMO_BYTES, H2_HPACK_DECODE_MEMO_BYTES, H2_HPACK_LITERAL_CACHE_BYTES, H2_HPACK_MAX_TABLE_SIZE, H2_MAX_HEADER_LIST_BYTES } from "../../limits.ts";

export { H2_HPACK_MAX_TABLE_SIZE, H2_MAX_HEADER_LIST_BYTES };

/** RFC 9113 §6.5.2 initial SETTINGS_HEADER_TABLE_SIZE; both tables start here. */
export const H2_HPACK_DEFAULT_TABLE_SIZE = 4096;
/** Size updates allowed at the start of one block: RFC 7541 §4.2 needs at most two (the smallest setting, then the final one). */
export const H2_HPACK_MAX_SIZE_UPDATES = 2;
/** Largest HPACK integer accepted: indices, lengths and sizes we accept are all far below 2^31. */
export const H2_HPACK_MAX_INTEGER = 0x7fffffff;
/** Continuation octets after an integer's prefix: 5 carry 35 bits, more can only be zero padding. */
export const H2_HPACK_MAX_INTEGER_OCTETS = 5;

/** RFC 7541 §4.1: each dynamic-table entry (and each header-list field, RFC 9113 §6.5.2) counts 32 octets of overhead. */
export const HPACK_ENTRY_OVERHEAD = 32;

/** RFC 7541 Appendix A; index i + 1 is STATIC_TABLE[i]. */
export const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];
const STATIC_COUNT = STATIC_TABLE.length; // 61

// ---------------------------------------------------------------------------
// Dynamic table

/**
 * The dynamic table (RFC 7541 §2.3.2, §4): a FIFO of entries sized name +
 * value + 32, newest first in index order. Storage is a power-of-two ring
 * addressed by insertion sequence number, so lookups are one mask away.
 */
class DynamicTable {
  private names: string[] = new Array<string>(16).fill("");
  private values: string[] = new Array<string>(16).fill("");
  private mask = 15;
  /** Entries ever inserted; the newest entry has sequence number `inserted - 1`. */
  inserted = 0;
  count = 0;
  /** Sum of entry sizes (RFC 7541 §4.1). */
  size = 0;
  /** Bumped on every change of contents or maximum size: an encoding made at one value is valid while it lasts. */
  changes = 0;

  constructor(public maxSize: number) {}

  /** Name of the entry at dynamic position `d` (0 = newest); d < count. */
  name(d: number): string {
    return this.names[(this.inserted - 1 - d) & this.mask];
  }

  value(d: number): string {
    return this.values[(this.inserted - 1 - d) & this.mask];
  }

  /** Adds an entry, evicting from the oldest end; false when the entry alone exceeds maxSize (the table is then empty, §4.4). */
  add(name: string, value: string): boolean {
    this.changes++;
    const need = name.length + value.length + HPACK_ENTRY_OVERHEAD;
    if (need > this.maxSize) {
      while (this.count > 0) this.evictOldest();
      return false;
    }
    while (this.size + need > this.maxSize) this.evictOldest();
    if (this.count === this.names.length) this.grow();
    const pos = this.inserted & this.mask;
    this.names[pos] = name;
    this.values[pos] = value;
    this.inserted++;
    this.count++;
    this.size += need;
    return true;
  }

  /** Sets the maximum size, evicting down to it (§4.3). */
  resize(maxSize: number): void {
    this.changes++;
    this.maxSize = maxSize;
    while (this.size > maxSize) this.evictOldest();
  }

  /** Entries newest first, for tests and debugging. */
  entries(): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (let d = 0; d < this.count; d++) out.push([this.name(d), this.value(d)]);
    return out;
  }

  /** Called for each evicted entry; the encoder keeps its lookup maps in step. */
  protected evicted(_seq: number, _name: string, _value: string): void {}

  private evictOldest(): void {
    const seq = this.inserted - this.count;
    const pos = seq & this.mask;
    const name = this.names[pos];
    const value = this.values[pos];
    this.names[pos] = "";
    this.values[pos] = "";
    this.count--;
    this.size -= name.length + value.length + HPACK_ENTRY_OVERHEAD;
    this.evicted(seq, name, value);
  }

  private grow(): void {
    const cap = this.names.length * 2;
    const names = new Array<string>(cap).fill("");
    const values = new Array<string>(cap).fill("");
    const mask = cap - 1;
    for (let seq = this.inserted - this.count; seq < this.inserted; seq++) {
      names[seq & mask] = this.names[seq & this.mask];
      values[seq & mask] = this.values[seq & this.mask];
    }
    this.names = names;
    this.values = values;
    this.mask = mask;
  }
}

// ---------------------------------------------------------------------------
// Decoder

/** A decoded header block. */
export interface HeaderList {
  /** `[name, value, …]` in wire order; empty when `overflow`. May be shared (the decoder's memo): never modified. */
  readonly fields: readonly string[];
  /** Size of the whole list as RFC 9113 §6.5.2 counts it (name + value + 32 per field), counted on past the cap. */
  bytes: number;
  /** The list exceeded the decoder's maxHeaderListBytes: no fields are returned, the table stayed in sync. */
  overflow: boolean;
  /**
   * Names of fields the peer sent as "never indexed" (RFC 7541 §6.2.3), or null.
   * An intermediary must forward them the same way: pass this to HpackEncoder.encode.
   */
  readonly neverIndexed: readonly string[] | null;
  /**
   * Every name is a pseudo-header name or a valid lower-case field name and
   * every value a valid field value (RFC 9113 §8.2.1): checked as literals
   * were decoded, and true of every table entry — the static table's, and the
   * dynamic table's unless the peer ever inserted one that was not (then
   * false for the rest of the connection). The §8.2 validators skip those
   * character checks when set; everything else they still check.
   */
  checked: boolean;
}

export interface HpackDecoderOptions {
  /**
   * Table size both sides start from (default 4096). An HTTP/2 session keeps
   * the default and calls setMaxTableSize() when the SETTINGS frame that
   * changes it is acknowledged; other values model "already agreed" (tests).
   */
  maxTableSize?: number;
  /** Header-list cap (default H2_MAX_HEADER_LIST_BYTES); advertise the same value as SETTINGS_MAX_HEADER_LIST_SIZE. */
  maxHeaderListBytes?: number;
  /**
   * Remember the last literal value after each static name and reuse its
   * string when the same octets come again (H2_HPACK_LITERAL_CACHE_BYTES).
   * For backend connections: servers such as nginx send every response
   * head as literals. Off by default (a client connection would make us
   * keep up to 61 values for it).
   */
  rememberLiterals?: boolean;
  /** Remember the last block that left the table unchanged, with its list (H2_HPACK_DECODE_MEMO_BYTES); default true. False: decode every block (tests compare the two). */
  blockMemo?: boolean;
}

/** Internal: a decoding failure; thrown inside decode() only and turned into an H2Error there. */
class HpackFail {
  constructor(readonly reason: string) {}
}

export class HpackDecoder {
  private readonly table: DynamicTable;
  /** SETTINGS_HEADER_TABLE_SIZE in force (acknowledged): no size update may exceed it. */
  private settingsMax: number;
  /** Smallest setting since the peer's last size update while a required update is pending, else -1. */
  private pendingMin = -1;
  private readonly maxListBytes: number;
  private failed: H2Error | null = null;
  /** No entry that fails the §8.2.1 character checks was ever inserted (see HeaderList.checked). */
  private tableChecked = true;

  // Per-call cursor; fields so that the small readers below need no tuples.
  private src: Uint8Array = new Uint8Array(0);
  /** `src` as a Buffer, made on first need (long raw strings only). */
  private srcBuf: Buffer | null = null;
  private p = 0;
  private end = 0;
  /** Octet length of the last string read. */
  private strLen = 0;
  /** Huffman output; grows to the longest decoded string seen. */
  private scratch: Buffer = Buffer.allocUnsafe(256); // >= RAW_COPY_MAX
  private readonly rememberLiterals: boolean;
  private readonly blockMemo: boolean;
  /** The last literal value seen after each static name (see H2_HPACK_LITERAL_CACHE_BYTES); made on first use. */
  private literals: Array<LiteralMemo | undefined> | null = null;
  /** Whether the value readLiteralValue returned last passed the §8.2.1 value check. */
  private literalValid = true;
  /**
   * The last block that left the table as it found it, and its list: the
   * same octets decode to the same list while `table.changes` is still
   * `memoChanges` (H2_HPACK_DECODE_MEMO_BYTES). Made on first use.
   */
  private memoBytes: Uint8Array | null = null;
  private memoLen = -1;
  private memoChanges = -1;
  private memoList: HeaderList | null = null;
  /**
   * The remembered block is self-contained: it names no dynamic-table entry
   * and updates no size, so it decodes to the same list whatever the table
   * holds. Its insertions (literals with incremental indexing: nginx adds
   * its server, date, content-type… to the table in every response head)
   * are replayed on a hit, so the table follows the peer's exactly as if
   * the block had been decoded.
   */
  private memoSelfContained = false;
  /** Positions in the remembered list of the fields its block inserted, in order. */
  private readonly memoInserts: number[] = [];
  /** The same, for the block being decoded (reused: no array per block). */
  private readonly inserts: number[] = [];
  /** Whether the block being decoded is self-contained so far (decodeBlock). */
  private selfContained = true;
  /** Blocks decode() answered from its memo (tests, debugging). */
  memoHits = 0;

  constructor(opts: HpackDecoderOptions = {}) {
    const size = Math.min(opts.maxTableSize ?? H2_HPACK_DEFAULT_TABLE_SIZE, H2_HPACK_MAX_TABLE_SIZE);
    this.table = new DynamicTable(size);
    this.settingsMax = size;
    this.maxListBytes = opts.maxHeaderListBytes ?? H2_MAX_HEADER_LIST_BYTES;
    this.rememberLiterals = opts.rememberLiterals ?? false;
    this.blockMemo = opts.blockMemo ?? true;
  }

  /**
   * Our SETTINGS_HEADER_TABLE_SIZE changed and the peer acknowledged it
   * (clamped to H2_HPACK_MAX_TABLE_SIZE; advertise no more). When it shrinks
   * below the table's current maximum, the peer's next block must start with
   * a size update no larger than it (RFC 7541 §4.2), else COMPRESSION_ERROR.
   */
  setMaxTableSize(size: number): void {
    size = Math.min(size, H2_HPACK_MAX_TABLE_SIZE);
    this.settingsMax = size;
    if (size < this.table.maxSize) {
      this.pendingMin = this.pendingMin < 0 ? size : Math.min(this.pendingMin, size);
      this.table.resize(size);
    }
  }

  /** Current dynamic table size in octets (RFC 7541 §4.1). */
  get tableSize(): number {
    return this.table.size;
  }

  /** The dynamic table's maximum size, as last set by the peer's size update. */
  get tableMaxSize(): number {
    return this.table.maxSize;
  }

  /** Dynamic table entries, newest first (tests, debugging). */
  tableEntries(): Array<[string, string]> {
    return this.table.entries();
  }

  /**
   * Decodes one complete header block (HEADERS/PUSH_PROMISE fragment plus
   * its CONTINUATIONs, padding and priority removed): `block[start, end)`.
   * Returns the header list, or a connection COMPRESSION_ERROR. `block` is
   * only read during the call; the strings returned are copies.
   */
  decode(block: Uint8Array, start = 0, end = block.length): HeaderList | H2Error {
    if (this.failed) return this.failed;
    const len = end - start;
    const memo = this.memoList;
    // The memo is taken for the same octets when they decode the same whatever the table holds
    // (self-contained; a required size update must come first, so not while one is pending; and
    // its list says `checked` only while the table has no invalid entry), or while the table is as
    // that block left it and the block did not change it (no insertion, no size update). A
    // required size update (pendingMin) bumps `changes` when it is set.
    if (
      memo !== null &&
      len === this.memoLen &&
      (this.memoSelfContained ? this.pendingMin < 0 && this.tableChecked : this.table.changes === this.memoChanges) &&
      sameBytes(this.memoBytes!, block, start, len)
    ) {
      this.memoHits++;
      if (this.memoSelfContained) this.replayInserts(memo.fields);
      return memo;
    }
    const before = this.table.changes;
    this.src = block;
    this.srcBuf = null;
    this.p = start;
    this.end = end;
    try {
      const list = this.decodeBlock();
      if (this.blockMemo && len <= H2_HPACK_DECODE_MEMO_BYTES && !list.overflow) {
        // Self-contained, with every field valid (its insertions then leave `tableChecked` as it is).
        const self = this.selfContained && list.checked;
        if (self || this.table.changes === before) this.remember(block, start, len, list, self);
      }
      return list;
    } catch (e) {
      if (!(e instanceof HpackFail)) throw e;
      this.failed = connError(H2_ERROR.COMPRESSION_ERROR, e.reason);
      return this.failed;
    } finally {
      this.src = EMPTY;
      this.srcBuf = null;
    }
  }

  private remember(block: Uint8Array, start: number, len: number, list: HeaderList, selfContained: boolean): void {
    const bytes = (this.memoBytes ??= new Uint8Array(H2_HPACK_DECODE_MEMO_BYTES));
    for (let i = 0; i < len; i++) bytes[i] = block[start + i];
    this.memoLen = len;
    this.memoChanges = this.table.changes;
    this.memoList = list;
    this.memoSelfContained = selfContained;
    const at = this.memoInserts;
    at.length = 0;
    if (selfContained) for (const i of this.inserts) at.push(i);
  }

  /** What decoding the remembered self-contained block does to the table: its insertions, in order. */
  private replayInserts(fields: readonly string[]): void {
    const at = this.memoInserts;
    for (let k = 0; k < at.length; k++) this.table.add(fields[at[k]], fields[at[k] + 1]);
  }

  private decodeBlock(): HeaderList {
    const src = this.src;
    const table = this.table;
    const max = this.maxListBytes;
    let fields: string[] = [];
    let bytes = 0;
    let overflow = false;
    let neverIndexed: string[] | null = null;
    let updates = 0;
    let sawField = false;
    let checked = true;
    let selfContained = true;
    // Insertions are recorded only for a block the memo may keep (so at most one per 2 of its
    // H2_HPACK_DECODE_MEMO_BYTES octets), and only while the list has not overflowed.
    const record = this.blockMemo && this.end - this.p <= H2_HPACK_DECODE_MEMO_BYTES;
    const inserts = this.inserts;
    inserts.length = 0;

    if (this.pendingMin >= 0 && this.end > this.p && (src[this.p] & 0xe0) !== 0x20) throw new HpackFail("hpack_size_update_missing");

    while (this.p < this.end) {
      const b = src[this.p];
      let name: string;
      let value: string;
      let nameLen: number;
      let valueLen: number;
      let never = false;

      if (b & 0x80) {
        // Indexed field (§6.1).
        const index = this.readInt(7);
        if (index === 0) throw new HpackFail("hpack_index_zero");
        if (index <= STATIC_COUNT) {
          const e = STATIC_TABLE[index - 1];
          name = e[0];
          value = e[1];
        } else {
          const d = index - STATIC_COUNT - 1;
          if (d >= table.count) throw new HpackFail("hpack_index_out_of_range");
          name = table.name(d);
          value = table.value(d);
          selfContained = false;
        }
        nameLen = name.length;
        valueLen = value.length;
      } else if ((b & 0xe0) === 0x20) {
        // Dynamic table size update (§6.3): only before the first field.
        if (sawField) throw new HpackFail("hpack_size_update_after_field");
        if (++updates > H2_HPACK_MAX_SIZE_UPDATES) throw new HpackFail("hpack_too_many_size_updates");
        const size = this.readInt(5);
        const limit = this.pendingMin >= 0 ? this.pendingMin : this.settingsMax;
        if (size > limit) throw new HpackFail("hpack_size_update_too_large");
        this.pendingMin = -1;
        table.resize(size);
        selfContained = false;
        continue;
      } else {
        // Literal (§6.2): with incremental indexing (01), without (0000) or never indexed (0001).
        const indexing = (b & 0x40) !== 0;
        never = !indexing && (b & 0x10) !== 0;
        const index = this.readInt(indexing ? 6 : 4);
        // Strings are only materialized when something will keep them.
        const keep = indexing || !overflow;
        if (index === 0) {
          name = this.readString(keep);
          nameLen = this.strLen;
          if (keep && name.charCodeAt(0) !== 0x3a && !isValidFieldName(name)) checked = false;
        } else if (index <= STATIC_COUNT) {
          name = STATIC_TABLE[index - 1][0];
          nameLen = name.length;
        } else {
          const d = index - STATIC_COUNT - 1;
          if (d >= table.count) throw new HpackFail("hpack_index_out_of_range");
          name = table.name(d);
          nameLen = name.length;
          selfContained = false;
        }
        if (keep && this.rememberLiterals && index > 0 && index <= STATIC_COUNT) {
          value = this.readLiteralValue(index);
          if (!this.literalValid) checked = false;
        } else {
          value = this.readString(keep);
          if (keep && !isValidFieldValue(value)) checked = false;
        }
        valueLen = this.strLen;
        if (indexing) {
          table.add(name, value);
          if (!checked) this.tableChecked = false;
          // Its position in the list (every field is listed unless the list overflows, and then nothing is remembered).
          if (record && !overflow) inserts.push(fields.length);
        }
      }

      sawField = true;
      bytes += nameLen + valueLen + HPACK_ENTRY_OVERHEAD;
      if (overflow) continue;
      if (bytes > max) {
        overflow = true;
        fields = [];
        neverIndexed = null;
        continue;
      }
      fields.push(name, value);
      if (never) (neverIndexed ??= []).push(name);
    }
    this.selfContained = selfContained;
    return { fields, bytes, overflow, neverIndexed, checked: checked && this.tableChecked };
  }

  /** Reads an integer with an N-bit prefix at the cursor (§5.1). */
  private readInt(prefix: number): number {
    const src = this.src;
    const max = (1 << prefix) - 1;
    let v = src[this.p++] & max;
    if (v < max) return v;
    for (let octets = 1, shift = 0; ; octets++, shift += 7) {
      if (this.p >= this.end) throw new HpackFail("hpack_truncated_integer");
      if (octets > H2_HPACK_MAX_INTEGER_OCTETS) throw new HpackFail("hpack_integer_too_long");
      const b = src[this.p++];
      v += (b & 0x7f) * 2 ** shift;
      if (v > H2_HPACK_MAX_INTEGER) throw new HpackFail("hpack_integer_overflow");
      if ((b & 0x80) === 0) return v;
    }
  }

  /**
   * A literal value after static name `index` (kept): the string decoded
   * from the same encoded octets last time, or a fresh decode that is then
   * remembered. Sets strLen and literalValid.
   */
  private readLiteralValue(index: number): string {
    if (this.p >= this.end) throw new HpackFail("hpack_truncated_string");
    const src = this.src;
    const at = this.p;
    const first = src[at];
    const len = this.readInt(7);
    const start = this.p;
    if (start + len > this.end) throw new HpackFail("hpack_truncated_string");
    if (len > H2_HPACK_LITERAL_CACHE_BYTES) {
      this.p = at;
      const v = this.readString(true);
      this.literalValid = isValidFieldValue(v);
      return v;
    }
    const memos = (this.literals ??= []);
    let m = memos[index];
    if (m !== undefined && m.first === first && m.len === len && sameBytes(m.bytes, src, start, len)) {
      this.p = start + len;
      this.strLen = m.strLen;
      this.literalValid = m.valid;
      return m.value;
    }
    this.p = at;
    const value = this.readString(true);
    if (m === undefined) memos[index] = m = { first: 0, len: 0, bytes: new Uint8Array(H2_HPACK_LITERAL_CACHE_BYTES), value: "", strLen: 0, valid: true };
    m.first = first;
    m.len = len;
    m.bytes.set(src.subarray(start, start + len));
    m.value = value;
    m.strLen = this.strLen;
    m.valid = this.literalValid = isValidFieldValue(value);
    return value;
  }

  /** Reads a string literal (§5.2); sets strLen; returns "" unless `keep`. Huffman input is always validated. */
  private readString(keep: boolean): string {
    if (this.p >= this.end) throw new HpackFail("hpack_truncated_string");
    const huffman = (this.src[this.p] & 0x80) !== 0;
    const len = this.readInt(7);
    const start = this.p;
    const stop = start + len;
    if (stop > this.end) throw new HpackFail("hpack_truncated_string");
    this.p = stop;
    if (!huffman) {
      this.strLen = len;
      if (!keep) return "";
      if (len > RAW_COPY_MAX) return latin1((this.srcBuf ??= asBuffer(this.src)), start, stop);
      // Short strings: copying into the scratch Buffer beats making a Buffer view of the block (~75 ns).
      const scratch = this.scratch;
      const src = this.src;
      for (let i = 0; i < len; i++) scratch[i] = src[start + i];
      return latin1(scratch, 0, len);
    }
    const room = Math.ceil((len * 8) / 5);
    if (room > this.scratch.length) this.scratch = Buffer.allocUnsafe(Math.max(room, this.scratch.length * 2));
    const n = huffmanDecode(this.src, start, stop, this.scratch, 0);
    if (n < 0) throw new HpackFail("hpack_bad_huffman");
    this.strLen = n;
    return keep ? latin1(this.scratch, 0, n) : "";
  }
}

/** A remembered literal value: its first octet (Huffman flag and short length) and encoded octets, and what they decoded to. */
interface LiteralMemo {
  first: number;
  len: number;
  bytes: Uint8Array;
  value: string;
  strLen: number;
  valid: boolean;
}

const EMPTY = new Uint8Array(0);
/** Raw strings up to this long are copied byte by byte into the scratch buffer (see readString). */
const RAW_COPY_MAX = 64;

// ---------------------------------------------------------------------------
// Encoder

/** Static index lookups: name → first index with that name, and value → full-match index. */
interface StaticName {
  index: number;
  values: Map<string, number>;
}
const STATIC_BY_NAME = new Map<string, StaticName>();
STATIC_TABLE.forEach(([name, value], i) => {
  let e = STATIC_BY_NAME.get(name);
  if (!e) STATIC_BY_NAME.set(name, (e = { index: i + 1, values: new Map() }));
  if (!e.values.has(value)) e.values.set(value, i + 1);
});

/**
 * Fields sent "without indexing": their values rarely repeat, so indexing
 * would only churn the table (nghttp2's list, hd_deflate_decide_indexing).
 */
const NOT_INDEXED = new Set([
  ":path",
  "age",
  "content-length",
  "etag",
  "if-modified-since",
  "if-none-match",
  "location",
  "set-cookie",
]);

/** Cookies shorter than this are sent never-indexed: short values are guessable through compression side channels (nghttp2, Firefox). */
const SHORT_COOKIE = 20;

interface DynName {
  /** Sequence number of the newest entry with this name. */
  seq: number;
  /** value → sequence number of the newest entry with that name and value. */
  values: Map<string, number>;
}

/** The encoder's dynamic table: a DynamicTable plus maps from name/value to the newest matching entry. */
class EncoderTable extends DynamicTable {
  private byName = new Map<string, DynName>();

  insert(name: string, value: string): void {
    if (!this.add(name, value)) return;
    const seq = this.inserted - 1;
    let e = this.byName.get(name);
    if (!e) this.byName.set(name, (e = { seq, values: new Map() }));
    e.seq = seq;
    e.values.set(value, seq);
  }

  /** HPACK index of an entry with this name and value, or 0. */
  findField(name: string, value: string): number {
    const seq = this.byName.get(name)?.values.get(value);
    return seq === undefined ? 0 : STATIC_COUNT + this.inserted - seq;
  }

  /** HPACK index of the newest entry with this name, or 0. */
  findName(name: string): number {
    const e = this.byName.get(name);
    return e === undefined ? 0 : STATIC_COUNT + this.inserted - e.seq;
  }

  protected override evicted(seq: number, name: string, value: string): void {
    const e = this.byName.get(name);
    if (!e) return;
    if (e.values.get(value) === seq) e.values.delete(value);
    // Eviction is oldest-first: if the newest entry of this name goes, all did.
    if (e.seq === seq) this.byName.delete(name);
  }
}

export interface HpackEncoderOptions {
  /**
   * Most of the peer's table we will use, in octets (default 4096, clamped to
   * H2_HPACK_MAX_TABLE_SIZE): the table holds min(this, peer's setting).
   */
  maxTableSize?: number;
  /** Huffman-code strings when that makes them shorter (default), always (as RFC 7541 Appendix C does), or never. */
  huffman?: "shorter" | "always" | "never";
  /**
   * Index every field not sent never-indexed, as the RFC 7541 Appendix C
   * examples do (default false: nghttp2's choices, see NOT_INDEXED).
   */
  indexAll?: boolean;
}

export class HpackEncoder {
  private readonly table: EncoderTable;
  private readonly cap: number;
  private readonly huffman: "shorter" | "always" | "never";
  private readonly indexAll: boolean;
  /** Size updates owed at the start of the next block (RFC 7541 §4.2): the smallest and the final size, or -1. */
  private pendingMin = -1;
  private pendingFinal = -1;
  /**
   * The last block encodeBlock made that changed nothing in the table: its
   * inputs and bytes. The same inputs while the table is unchanged give the
   * same bytes (H2_HPACK_BLOCK_MEMO_BYTES).
   */
  private memoHead: readonly string[] | null = null;
  private memoFields: string[] | null = null;
  private memoBytes: Uint8Array | null = null;
  private memoChanges = -1;
  /** Blocks encodeBlock copied from its memo (tests, debugging). */
  blockMemoHits = 0;

  constructor(opts: HpackEncoderOptions = {}) {
    this.cap = Math.min(opts.maxTableSize ?? H2_HPACK_DEFAULT_TABLE_SIZE, H2_HPACK_MAX_TABLE_SIZE);
    this.huffman = opts.huffman ?? "shorter";
    this.indexAll = opts.indexAll ?? false;
    // The peer's decoder starts at 4096; using less must be announced.
    this.table = new EncoderTable(H2_HPACK_DEFAULT_TABLE_SIZE);
    this.setPeerMaxTableSize(H2_HPACK_DEFAULT_TABLE_SIZE);
  }

  /**
   * The peer's SETTINGS_HEADER_TABLE_SIZE (call when its SETTINGS frame is
   * processed). The table becomes min(size, maxTableSize); the change is
   * announced by size updates at the start of the next block.
   */
  setPeerMaxTableSize(size: number): void {
    const next = Math.min(size, this.cap);
    const current = this.pendingFinal >= 0 ? this.pendingFinal : this.table.maxSize;
    if (next === current && this.pendingFinal < 0) return;
    this.pendingMin = this.pendingMin < 0 ? Math.min(next, current) : Math.min(this.pendingMin, next);
    this.pendingFinal = next;
  }

  /** Current dynamic table size in octets. */
  get tableSize(): number {
    return this.table.size;
  }

  /** Dynamic table entries, newest first (tests, debugging). */
  tableEntries(): Array<[string, string]> {
    return this.table.entries();
  }

  /**
   * Appends the header block for `fields` (`[name, value, …]`, names already
   * lower-case, latin1 strings: a char above U+00FF is sent as its low byte)
   * to `out`. Fields named in `neverIndex` (e.g. HeaderList.neverIndexed of
   * the request being forwarded) are sent never-indexed, as are
   * authorization, proxy-authorization and cookies shorter than 20 octets.
   */
  encode(fields: readonly string[], out: ByteWriter, neverIndex?: readonly string[] | null): void {
    if (this.pendingFinal >= 0) this.emitSizeUpdates(out);
    for (let i = 0; i + 1 < fields.length; i += 2) this.encodeField(fields[i], fields[i + 1], out, neverIndex);
  }

  /**
   * encode(head) then encode(fields), `head` being a fixed pseudo-header list
   * such as [":status", "200"] (compared by identity) or null. A proxy sends
   * the same head again and again (a backend's response fields, a client's
   * request fields), and once its fields are in the table the block is all
   * indices and literals that are never indexed: while the table does not
   * change, the same fields give the same bytes, copied instead of looked up
   * field by field (~1 µs per nginx response head).
   */
  encodeBlock(head: readonly string[] | null, fields: readonly string[], out: ByteWriter, neverIndex: readonly string[] | null): void {
    const plain = neverIndex === null || neverIndex.length === 0;
    const m = this.memoFields;
    if (plain && m !== null && head === this.memoHead && this.memoChanges === this.table.changes && this.pendingFinal < 0 && sameStrings(m, fields)) {
      out.bytes(this.memoBytes!);
      this.blockMemoHits++;
      return;
    }
    const start = out.len;
    const before = this.table.changes;
    const clean = this.pendingFinal < 0;
    if (head !== null) this.encode(head, out);
    this.encode(fields, out, neverIndex);
    if (plain && clean && this.table.changes === before && out.len - start <= H2_HPACK_BLOCK_MEMO_BYTES) {
      this.memoHead = head;
      this.memoFields = fields.slice();
      this.memoBytes = out.buf.slice(start, out.len);
      this.memoChanges = before;
    }
  }

  private emitSizeUpdates(out: ByteWriter): void {
    const min = this.pendingMin;
    const final = this.pendingFinal;
    this.pendingMin = this.pendingFinal = -1;
    if (min < final) {
      writeInt(out, 0x20, 5, min);
      this.table.resize(min);
    }
    writeInt(out, 0x20, 5, final);
    this.table.resize(final);
  }

  private encodeField(name: string, value: string, out: ByteWriter, neverIndex?: readonly string[] | null): void {
    const never =
      name === "authorization" ||
      name === "proxy-authorization" ||
      (name === "cookie" && value.length < SHORT_COOKIE) ||
      (neverIndex != null && neverIndex.includes(name));
    const st = STATIC_BY_NAME.get(name);
    if (!never) {
      const full = st?.values.get(value) ?? this.table.findField(name, value);
      if (full !== 0) {
        writeInt(out, 0x80, 7, full);
        return;
      }
    }
    const nameIndex = st !== undefined ? st.index : this.table.findName(name);
    if (never) {
      writeInt(out, 0x10, 4, nameIndex);
    } else if (
      this.indexAll ||
      (!NOT_INDEXED.has(name) && (name.length + value.length + HPACK_ENTRY_OVERHEAD) * 4 <= this.table.maxSize * 3)
    ) {
      // Incremental indexing, unless the entry would take over 3/4 of the table (nghttp2).
      writeInt(out, 0x40, 6, nameIndex);
      if (nameIndex === 0) this.writeString(out, name);
      this.writeString(out, value);
      this.table.insert(name, value);
      return;
    } else {
      writeInt(out, 0x00, 4, nameIndex);
    }
    if (nameIndex === 0) this.writeString(out, name);
    this.writeString(out, value);
  }

  private writeString(out: ByteWriter, s: string): void {
    const n = s.length;
    if (this.huffman !== "never" && n > 0) {
      const h = huffmanLength(s);
      if (h < n || (h === n && this.huffman === "always")) {
        writeInt(out, 0x80, 7, h);
        out.ensure(h);
        out.len = huffmanEncode(s, out.buf, out.len);
        return;
      }
    }
    writeInt(out, 0, 7, n);
    out.ensure(n);
    const buf = out.buf;
    let o = out.len;
    for (let i = 0; i < n; i++) buf[o++] = s.charCodeAt(i);
    out.len = o;
  }
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Writes integer `v` with an N-bit prefix (§5.1); `first` holds the representation's high bits. */
function writeInt(out: ByteWriter, first: number, prefix: number, v: number): void {
  out.ensure(6);
  const buf = out.buf;
  const max = (1 << prefix) - 1;
  if (v < max) {
    buf[out.len++] = first | v;
    return;
  }
  buf[out.len++] = first | max;
  v -= max;
  while (v >= 0x80) {
    buf[out.len++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[out.len++] = v;
}
