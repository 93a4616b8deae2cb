/**
 * The HPACK Huffman code (RFC 7541 §5.2, Appendix B): encode, encoded length,
 * and a strict decoder.
 *
 * The Appendix B code is canonical (codes are assigned in order of length,
 * then symbol), so the 257 code lengths below determine every code; the
 * tables are built from them once, at module load (immutable data, 256 KiB,
 * ~2 ms).
 *
 * Decoding runs a byte-at-a-time state machine: a state is an internal node
 * of the code tree (256 of them), and one table entry per (state, input byte)
 * gives the next state, the 0–2 symbols completed on the way and whether the
 * byte walked into EOS. A string is valid only if it ends in an "accepting"
 * state: the root, or a node reached by at most 7 one-bits since the last
 * symbol (§5.2: padding is a prefix of EOS, shorter than 8 bits).
 */

/** Bit length of the code of each symbol 0..255 and EOS (256), from RFC 7541 Appendix B. */
// prettier-ignore
const CODE_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];

const EOS = 256;

/** Code bits of each symbol, right-aligned (symbol 256 = EOS = 30 one-bits). */
export const HUFFMAN_CODES = new Uint32Array(257);
/** Code length in bits of each symbol. */
export const HUFFMAN_LENGTHS = Uint8Array.from(CODE_LENGTHS);

// Canonical assignment: walk symbols by (length, symbol); each code is the
// previous one plus one, shifted left by the growth in length.
{
  const order = [...CODE_LENGTHS.keys()].sort((a, b) => CODE_LENGTHS[a] - CODE_LENGTHS[b] || a - b);
  let code = 0;
  let prevLen = CODE_LENGTHS[order[0]];
  for (let i = 0; i < order.length; i++) {
    const sym = order[i];
    const len = CODE_LENGTHS[sym];
    if (i > 0) code = (code + 1) * 2 ** (len - prevLen);
    prevLen = len;
    HUFFMAN_CODES[sym] = code;
  }
}

// Decoder tables. Entry layout (Uint32): bits 0–7 next state, 8–15 first
// symbol, 16–23 second symbol, 24–25 symbol count, bit 26 failure (EOS seen
// or no such code path).
const FAIL = 1 << 26;
const DECODE = new Uint32Array(256 * 256);
const ACCEPTING = new Uint8Array(256);
{
  // Code tree: internal nodes 0..255 (0 = root); child >= 0 is a node,
  // child < 0 is leaf -(sym + 1).
  const left = new Int32Array(256).fill(0x7fffffff);
  const right = new Int32Array(256).fill(0x7fffffff);
  let nodes = 1;
  for (let sym = 0; sym <= EOS; sym++) {
    const len = CODE_LENGTHS[sym];
    const code = HUFFMAN_CODES[sym];
    let node = 0;
    for (let bit = len - 1; bit >= 0; bit--) {
      const one = Math.floor(code / 2 ** bit) % 2 === 1;
      const kids = one ? right : left;
      if (bit === 0) {
        kids[node] = -(sym + 1);
      } else {
        if (kids[node] === 0x7fffffff) kids[node] = nodes++;
        node = kids[node];
      }
    }
  }
  // Accepting: the root, and the all-ones path below it up to depth 7.
  ACCEPTING[0] = 1;
  for (let node = 0, depth = 1; depth <= 7; depth++) {
    node = right[node];
    ACCEPTING[node] = 1;
  }
  // Build the table a nibble at a time (4 bits complete at most one symbol,
  // since the shortest code is 5 bits), then compose two nibbles per byte:
  // ~65k cheap steps instead of ~500k tree walks at module load.
  const NIBBLE = new Int32Array(256 * 16); // next | sym << 8 | hasSym << 16, or -1 on failure
  for (let state = 0; state < nodes; state++) {
    for (let nib = 0; nib < 16; nib++) {
      let node = state;
      let out = 0;
      for (let bit = 3; bit >= 0 && out >= 0; bit--) {
        const child = (nib >> bit) & 1 ? right[node] : left[node];
        if (child === 0x7fffffff || child === -(EOS + 1)) out = -1;
        else if (child < 0) {
          out = ((-child - 1) << 8) | (1 << 16);
          node = 0;
        } else node = child;
      }
      NIBBLE[(state << 4) | nib] = out < 0 ? -1 : out | node;
    }
  }
  for (let state = 0; state < nodes; state++) {
    for (let byte = 0; byte < 256; byte++) {
      const a = NIBBLE[(state << 4) | (byte >> 4)];
      const b = a < 0 ? -1 : NIBBLE[((a & 0xff) << 4) | (byte & 15)];
      if (b < 0) {
        DECODE[(state << 8) | byte] = FAIL;
        continue;
      }
      let count = 0;
      let syms = 0;
      if (a & (1 << 16)) {
        syms = (a >>> 8) & 0xff;
        count = 1;
      }
      if (b & (1 << 16)) {
        syms |= ((b >>> 8) & 0xff) << (8 * count);
        count++;
      }
      DECODE[(state << 8) | byte] = (b & 0xff) | (syms << 8) | (count << 24);
    }
  }
}

/**
 * Decodes Huffman-coded `src[start, end)` into `dst` from `at`; returns the
 * offset after the last byte written, or -1 when the input contains EOS or
 * ends in padding that is longer than 7 bits or not all ones (RFC 7541 §5.2).
 * `dst` must have room for (end - start) * 8 / 5 bytes (shortest code: 5 bits).
 */
export function huffmanDecode(src: Uint8Array, start: number, end: number, dst: Uint8Array, at: number): number {
  let state = 0;
  let o = at;
  for (let i = start; i < end; i++) {
    const e = DECODE[(state << 8) | src[i]];
    if (e & FAIL) return -1;
    const n = e >>> 24;
    if (n !== 0) {
      dst[o++] = e >>> 8;
      if (n === 2) dst[o++] = e >>> 16;
    }
    state = e & 0xff;
  }
  return ACCEPTING[state] ? o : -1;
}

/** Huffman-coded length in bytes of a latin1 string (one char = one octet; only the low 8 bits of a char are used). */
export function huffmanLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += HUFFMAN_LENGTHS[s.charCodeAt(i) & 0xff];
  return (bits + 7) >>> 3;
}

/**
 * Writes the Huffman code of latin1 string `s` into `dst` from `at`, padded
 * with one-bits (the EOS prefix); returns the offset after the last byte.
 * `dst` must have room for huffmanLength(s) bytes.
 */
export function huffmanEncode(s: string, dst: Uint8Array, at: number): number {
  let o = at;
  let acc = 0; // pending bits, right-aligned; fewer than 8 between symbols
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const sym = s.charCodeAt(i) & 0xff;
    let code = HUFFMAN_CODES[sym];
    let len = HUFFMAN_LENGTHS[sym];
    if (len > 24) {
      // Keep acc within 31 bits: push the high part first.
      const hi = len - 16;
      acc = (acc << hi) | (code >>> 16);
      n += hi;
      while (n >= 8) {
        n -= 8;
        dst[o++] = acc >>> n;
      }
      acc &= (1 << n) - 1;
      code &= 0xffff;
      len = 16;
    }
    acc = (acc << len) | code;
    n += len;
    while (n >= 8) {
      n -= 8;
      dst[o++] = acc >>> n;
    }
    acc &= (1 << n) - 1;
  }
  if (n > 0) dst[o++] = (acc << (8 - n)) | (0xff >>> n);
  return o;
}
