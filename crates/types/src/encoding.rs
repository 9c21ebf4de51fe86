//! The order-preserving ("memcomparable") key encoding for SQL values.
//!
//! Encoded values compare, as plain byte strings, in the same order as the SQL
//! values they encode. A tuple is encoded by concatenating the encodings of its
//! columns; because every encoding is *prefix-free* (no encoded value is a
//! proper prefix of another encoded value of the same column), byte order of
//! the concatenation is the lexicographic, column-by-column order of the
//! tuples. Columns of one key may mix ascending and descending directions.
//!
//! # Format
//!
//! Every value starts with a one-byte tag that names its type (and NULL). The
//! tag is followed by a payload whose length is fixed by the type or, for
//! variable-length values, ended by a terminator.
//!
//! | value          | tag    | payload                                                        |
//! |----------------|--------|----------------------------------------------------------------|
//! | NULL           | `0x01` | none                                                           |
//! | `false`        | `0x10` | none                                                           |
//! | `true`         | `0x11` | none                                                           |
//! | `i64` *v*      | `0x20` | 8 bytes big-endian of *v* with the sign bit flipped            |
//! | `u64` *v*      | `0x28` | 8 bytes big-endian of *v*                                      |
//! | `f64` *v*      | `0x30` | 8 bytes big-endian, see below                                  |
//! | bytes *b*      | `0x40` | *b* with each `0x00` written `0x00 0xFF`, then `0x00 0x01`     |
//! | string *s*     | `0x48` | the UTF-8 bytes of *s*, escaped and terminated like bytes      |
//!
//! Examples (ascending):
//!
//! | value             | encoding                          |
//! |-------------------|-----------------------------------|
//! | NULL              | `01`                              |
//! | `i64` `-1`        | `20 7F FF FF FF FF FF FF FF`      |
//! | `i64` `0`         | `20 80 00 00 00 00 00 00 00`      |
//! | `u64` `5`         | `28 00 00 00 00 00 00 00 05`      |
//! | `f64` `1.0`       | `30 BF F0 00 00 00 00 00 00`      |
//! | `f64` `-1.0`      | `30 40 0F FF FF FF FF FF FF`      |
//! | bytes `""`        | `40 00 01`                        |
//! | bytes `"a\0"`     | `40 61 00 FF 00 01`               |
//! | string `"ab"`     | `48 61 62 00 01`                  |
//!
//! ## Floats
//!
//! Floats are ordered totally: `-inf < ... < -0.0 == 0.0 < ... < +inf < NaN`.
//! Like PostgreSQL, all NaNs are equal to each other and greater than every
//! other value. The encoder first canonicalises the value (`-0.0` becomes
//! `0.0`, every NaN becomes the quiet NaN `0x7FF8_0000_0000_0000`), then takes
//! the IEEE-754 bits: for a positive value it sets the sign bit, for a negative
//! value it inverts all 64 bits. The decoder rejects encodings the encoder
//! never produces (a negative zero or a non-canonical NaN), so that every value
//! has exactly one encoding.
//!
//! ## Byte strings
//!
//! Inside the payload, `0x00` is an escape byte: `0x00 0xFF` stands for a data
//! byte `0x00` and `0x00 0x01` ends the value. Any other byte after `0x00` is
//! corrupt. Because the terminator sorts below every data byte and below the
//! escaped zero, a byte string sorts before every longer string it is a prefix
//! of (`"ab" < "ab\0" < "ab\x01"`). Strings are compared by their UTF-8 bytes,
//! which is code point order (the `C` collation).
//!
//! ## NULL
//!
//! The NULL tag is the lowest tag, so in ascending columns NULL sorts before
//! every non-NULL value ("NULLS FIRST"). PostgreSQL sorts NULLs last in
//! ascending order by default; a key only needs *some* total order, and the SQL
//! layer applies the `NULLS FIRST/LAST` of a query on top of it. Tags `0x00`
//! and `0xFF` are never used, in either direction.
//!
//! ## Descending
//!
//! The descending encoding of a value is its ascending encoding (tag included)
//! with every byte inverted (`b ^ 0xFF`). Since the ascending encodings are
//! prefix-free, inverting every byte exactly reverses their order; in
//! particular NULL sorts *last* in a descending column.
//!
//! # Example
//!
//! ```
//! use tessera_types::encoding::{KeyReader, KeyWriter};
//!
//! let mut a = KeyWriter::new();
//! a.write_i64(7).write_str_desc("b");
//! let mut b = KeyWriter::new();
//! b.write_i64(7).write_str_desc("a");
//! // Second column is descending, so "b" sorts before "a".
//! assert!(a.as_bytes() < b.as_bytes());
//!
//! let mut r = KeyReader::new(a.as_bytes());
//! assert_eq!(r.decode_i64().unwrap(), 7);
//! assert_eq!(r.decode_str_desc().unwrap(), "b");
//! assert!(r.is_at_end());
//! ```

use thiserror::Error;

/// Tag of NULL, the lowest tag.
pub const TAG_NULL: u8 = 0x01;
/// Tag of the boolean `false`.
pub const TAG_FALSE: u8 = 0x10;
/// Tag of the boolean `true`.
pub const TAG_TRUE: u8 = 0x11;
/// Tag of a signed integer (every SQL integer width is encoded as `i64`).
pub const TAG_INT: u8 = 0x20;
/// Tag of an unsigned 64-bit integer (ids).
pub const TAG_UINT: u8 = 0x28;
/// Tag of a 64-bit float.
pub const TAG_FLOAT: u8 = 0x30;
/// Tag of an arbitrary byte string.
pub const TAG_BYTES: u8 = 0x40;
/// Tag of a UTF-8 string.
pub const TAG_STRING: u8 = 0x48;

/// The escape byte inside byte-string payloads.
const ESCAPE: u8 = 0x00;
/// Follows [`ESCAPE`] to stand for a data byte `0x00`.
const ESCAPED_ZERO: u8 = 0xFF;
/// Follows [`ESCAPE`] to end a byte string.
const TERMINATOR: u8 = 0x01;

/// The sign bit of an `i64` / `f64`.
const SIGN_BIT: u64 = 1 << 63;
/// The one NaN the encoder writes.
const CANONICAL_NAN_BITS: u64 = 0x7FF8_0000_0000_0000;

/// XOR mask applied to every byte of an ascending encoding.
const ASC: u8 = 0x00;
/// XOR mask applied to every byte of a descending encoding.
const DESC: u8 = 0xFF;

/// Inverts every byte of `buf` from `start` on, turning the ascending
/// encodings written there into descending ones.
fn invert_from(buf: &mut [u8], start: usize) {
    for b in &mut buf[start..] {
        *b = !*b;
    }
}

/// The 8 payload bytes of an `i64`.
fn i64_payload(v: i64) -> [u8; 8] {
    ((v as u64) ^ SIGN_BIT).to_be_bytes()
}

/// The 8 payload bytes of an `f64`.
fn f64_payload(v: f64) -> [u8; 8] {
    let bits = if v.is_nan() {
        CANONICAL_NAN_BITS
    } else if v == 0.0 {
        // Both zeros become +0.0.
        0
    } else {
        v.to_bits()
    };
    let ordered = if bits & SIGN_BIT != 0 {
        !bits
    } else {
        bits | SIGN_BIT
    };
    ordered.to_be_bytes()
}

/// Writes the escaped payload and terminator of a byte string (no tag).
fn write_escaped(buf: &mut Vec<u8>, v: &[u8]) {
    buf.reserve(v.len() + 2);
    for chunk in v.split_inclusive(|&b| b == ESCAPE) {
        buf.extend_from_slice(chunk);
        if chunk.last() == Some(&ESCAPE) {
            buf.push(ESCAPED_ZERO);
        }
    }
    buf.push(ESCAPE);
    buf.push(TERMINATOR);
}

/// Appends the ascending encoding of NULL to `buf`.
pub fn encode_null(buf: &mut Vec<u8>) {
    buf.push(TAG_NULL);
}

/// Appends the descending encoding of NULL to `buf`; it sorts after every
/// descending non-NULL value.
pub fn encode_null_desc(buf: &mut Vec<u8>) {
    buf.push(!TAG_NULL);
}

/// Appends the ascending encoding of a boolean to `buf` (`false < true`).
pub fn encode_bool(buf: &mut Vec<u8>, v: bool) {
    buf.push(if v { TAG_TRUE } else { TAG_FALSE });
}

/// Appends the descending encoding of a boolean to `buf`.
pub fn encode_bool_desc(buf: &mut Vec<u8>, v: bool) {
    let start = buf.len();
    encode_bool(buf, v);
    invert_from(buf, start);
}

/// Appends the ascending encoding of a signed integer to `buf`. Every SQL
/// integer width is encoded as `i64`.
pub fn encode_i64(buf: &mut Vec<u8>, v: i64) {
    buf.push(TAG_INT);
    buf.extend_from_slice(&i64_payload(v));
}

/// Appends the descending encoding of a signed integer to `buf`.
pub fn encode_i64_desc(buf: &mut Vec<u8>, v: i64) {
    let start = buf.len();
    encode_i64(buf, v);
    invert_from(buf, start);
}

/// Appends the ascending encoding of an unsigned integer (such as an id) to
/// `buf`.
pub fn encode_u64(buf: &mut Vec<u8>, v: u64) {
    buf.push(TAG_UINT);
    buf.extend_from_slice(&v.to_be_bytes());
}

/// Appends the descending encoding of an unsigned integer to `buf`.
pub fn encode_u64_desc(buf: &mut Vec<u8>, v: u64) {
    let start = buf.len();
    encode_u64(buf, v);
    invert_from(buf, start);
}

/// Appends the ascending encoding of a float to `buf`.
///
/// The order is total: `-inf < ... < 0.0 < ... < +inf < NaN`; `-0.0` encodes
/// exactly like `0.0` and every NaN encodes like every other NaN.
pub fn encode_f64(buf: &mut Vec<u8>, v: f64) {
    buf.push(TAG_FLOAT);
    buf.extend_from_slice(&f64_payload(v));
}

/// Appends the descending encoding of a float to `buf`.
pub fn encode_f64_desc(buf: &mut Vec<u8>, v: f64) {
    let start = buf.len();
    encode_f64(buf, v);
    invert_from(buf, start);
}

/// Appends the ascending encoding of an arbitrary byte string to `buf`. A
/// string sorts before every longer string it is a prefix of.
pub fn encode_bytes(buf: &mut Vec<u8>, v: &[u8]) {
    buf.push(TAG_BYTES);
    write_escaped(buf, v);
}

/// Appends the descending encoding of a byte string to `buf`.
pub fn encode_bytes_desc(buf: &mut Vec<u8>, v: &[u8]) {
    let start = buf.len();
    encode_bytes(buf, v);
    invert_from(buf, start);
}

/// Appends the ascending encoding of a string to `buf`; strings compare by
/// their UTF-8 bytes (code point order).
pub fn encode_str(buf: &mut Vec<u8>, v: &str) {
    buf.push(TAG_STRING);
    write_escaped(buf, v.as_bytes());
}

/// Appends the descending encoding of a string to `buf`.
pub fn encode_str_desc(buf: &mut Vec<u8>, v: &str) {
    let start = buf.len();
    encode_str(buf, v);
    invert_from(buf, start);
}

/// Returns the smallest key greater than every key that starts with `prefix`,
/// i.e. the exclusive end of the span of keys with that prefix: the last byte
/// that is not `0xFF` is incremented and the trailing `0xFF` bytes are dropped.
///
/// Returns `None` if `prefix` is empty or consists only of `0xFF` bytes; then
/// no such key exists and the span is unbounded.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xFF)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

/// A builder of keys: a byte buffer with one method per encoding, each
/// returning `&mut Self` so that columns can be chained.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyWriter {
    buf: Vec<u8>,
}

impl KeyWriter {
    /// An empty key.
    pub fn new() -> Self {
        Self::default()
    }

    /// A key that starts with the raw bytes `prefix` (such as a table prefix).
    pub fn with_prefix(prefix: &[u8]) -> Self {
        Self {
            buf: prefix.to_vec(),
        }
    }

    /// Continues writing at the end of `buf`.
    pub fn from_vec(buf: Vec<u8>) -> Self {
        Self { buf }
    }

    /// Appends raw bytes without any encoding.
    pub fn write_raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// Appends an ascending NULL, see [`encode_null`].
    pub fn write_null(&mut self) -> &mut Self {
        encode_null(&mut self.buf);
        self
    }

    /// Appends a descending NULL, see [`encode_null_desc`].
    pub fn write_null_desc(&mut self) -> &mut Self {
        encode_null_desc(&mut self.buf);
        self
    }

    /// Appends an ascending boolean, see [`encode_bool`].
    pub fn write_bool(&mut self, v: bool) -> &mut Self {
        encode_bool(&mut self.buf, v);
        self
    }

    /// Appends a descending boolean, see [`encode_bool_desc`].
    pub fn write_bool_desc(&mut self, v: bool) -> &mut Self {
        encode_bool_desc(&mut self.buf, v);
        self
    }

    /// Appends an ascending signed integer, see [`encode_i64`].
    pub fn write_i64(&mut self, v: i64) -> &mut Self {
        encode_i64(&mut self.buf, v);
        self
    }

    /// Appends a descending signed integer, see [`encode_i64_desc`].
    pub fn write_i64_desc(&mut self, v: i64) -> &mut Self {
        encode_i64_desc(&mut self.buf, v);
        self
    }

    /// Appends an ascending unsigned integer, see [`encode_u64`].
    pub fn write_u64(&mut self, v: u64) -> &mut Self {
        encode_u64(&mut self.buf, v);
        self
    }

    /// Appends a descending unsigned integer, see [`encode_u64_desc`].
    pub fn write_u64_desc(&mut self, v: u64) -> &mut Self {
        encode_u64_desc(&mut self.buf, v);
        self
    }

    /// Appends an ascending float, see [`encode_f64`].
    pub fn write_f64(&mut self, v: f64) -> &mut Self {
        encode_f64(&mut self.buf, v);
        self
    }

    /// Appends a descending float, see [`encode_f64_desc`].
    pub fn write_f64_desc(&mut self, v: f64) -> &mut Self {
        encode_f64_desc(&mut self.buf, v);
        self
    }

    /// Appends an ascending byte string, see [`encode_bytes`].
    pub fn write_bytes(&mut self, v: &[u8]) -> &mut Self {
        encode_bytes(&mut self.buf, v);
        self
    }

    /// Appends a descending byte string, see [`encode_bytes_desc`].
    pub fn write_bytes_desc(&mut self, v: &[u8]) -> &mut Self {
        encode_bytes_desc(&mut self.buf, v);
        self
    }

    /// Appends an ascending string, see [`encode_str`].
    pub fn write_str(&mut self, v: &str) -> &mut Self {
        encode_str(&mut self.buf, v);
        self
    }

    /// Appends a descending string, see [`encode_str_desc`].
    pub fn write_str_desc(&mut self, v: &str) -> &mut Self {
        encode_str_desc(&mut self.buf, v);
        self
    }

    /// The key written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The length in bytes of the key written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Consumes the writer and returns the key.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Why a key could not be decoded. Positions are byte offsets into the buffer
/// the [`KeyReader`] was created over.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyDecodeError {
    /// The key ended in the middle of a value (or where a value was expected).
    #[error("key truncated at byte {position}: expected {expected}")]
    Truncated {
        /// Where more bytes were needed.
        position: usize,
        /// What was being read.
        expected: &'static str,
    },
    /// A value started with a tag other than the one the caller asked for.
    #[error("unexpected tag {found:#04x} at byte {position}: expected {expected}")]
    UnexpectedTag {
        /// The offset of the tag.
        position: usize,
        /// The tag found, after undoing the descending inversion if any.
        found: u8,
        /// What was being read.
        expected: &'static str,
    },
    /// A byte string contained the escape byte `0x00` followed by a byte that
    /// is neither `0xFF` (escaped zero) nor `0x01` (terminator).
    #[error("invalid escape sequence 0x00 {found:#04x} at byte {position}")]
    InvalidEscape {
        /// The offset of the byte after the escape byte.
        position: usize,
        /// That byte, after undoing the descending inversion if any.
        found: u8,
    },
    /// A string value was not valid UTF-8.
    #[error("string value at byte {position} is not valid UTF-8")]
    InvalidUtf8 {
        /// The offset of the value's tag.
        position: usize,
    },
    /// A float payload that the encoder never writes (negative zero or a
    /// NaN other than the canonical one).
    #[error("non-canonical float encoding at byte {position}")]
    NonCanonicalFloat {
        /// The offset of the value's tag.
        position: usize,
    },
}

/// A cursor that decodes values, one after the other, from an encoded key.
///
/// Every `decode_*` method either decodes one whole value and advances past it,
/// or returns an error and leaves the cursor where it was. Corrupt input never
/// causes a panic.
#[derive(Debug, Clone)]
pub struct KeyReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> KeyReader<'a> {
    /// A reader positioned at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// The offset of the next byte to be read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Whether every byte has been read.
    pub fn is_at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Whether the next value is an ascending NULL. Does not advance.
    pub fn is_null(&self) -> bool {
        self.peek_tag(ASC) == Some(TAG_NULL)
    }

    /// Whether the next value is a descending NULL. Does not advance.
    pub fn is_null_desc(&self) -> bool {
        self.peek_tag(DESC) == Some(TAG_NULL)
    }

    /// Decodes an ascending NULL.
    pub fn decode_null(&mut self) -> Result<(), KeyDecodeError> {
        self.atomic(|r| r.expect_tag(ASC, TAG_NULL, "NULL"))
    }

    /// Decodes a descending NULL.
    pub fn decode_null_desc(&mut self) -> Result<(), KeyDecodeError> {
        self.atomic(|r| r.expect_tag(DESC, TAG_NULL, "NULL"))
    }

    /// Decodes an ascending boolean.
    pub fn decode_bool(&mut self) -> Result<bool, KeyDecodeError> {
        self.atomic(|r| r.bool(ASC))
    }

    /// Decodes a descending boolean.
    pub fn decode_bool_desc(&mut self) -> Result<bool, KeyDecodeError> {
        self.atomic(|r| r.bool(DESC))
    }

    /// Decodes an ascending signed integer.
    pub fn decode_i64(&mut self) -> Result<i64, KeyDecodeError> {
        self.atomic(|r| r.i64(ASC))
    }

    /// Decodes a descending signed integer.
    pub fn decode_i64_desc(&mut self) -> Result<i64, KeyDecodeError> {
        self.atomic(|r| r.i64(DESC))
    }

    /// Decodes an ascending unsigned integer.
    pub fn decode_u64(&mut self) -> Result<u64, KeyDecodeError> {
        self.atomic(|r| r.u64(ASC))
    }

    /// Decodes a descending unsigned integer.
    pub fn decode_u64_desc(&mut self) -> Result<u64, KeyDecodeError> {
        self.atomic(|r| r.u64(DESC))
    }

    /// Decodes an ascending float. A NaN decodes as the canonical quiet NaN and
    /// a zero as `+0.0`.
    pub fn decode_f64(&mut self) -> Result<f64, KeyDecodeError> {
        self.atomic(|r| r.f64(ASC))
    }

    /// Decodes a descending float.
    pub fn decode_f64_desc(&mut self) -> Result<f64, KeyDecodeError> {
        self.atomic(|r| r.f64(DESC))
    }

    /// Decodes an ascending byte string.
    pub fn decode_bytes(&mut self) -> Result<Vec<u8>, KeyDecodeError> {
        self.atomic(|r| r.bytes(ASC, TAG_BYTES, "byte string"))
    }

    /// Decodes a descending byte string.
    pub fn decode_bytes_desc(&mut self) -> Result<Vec<u8>, KeyDecodeError> {
        self.atomic(|r| r.bytes(DESC, TAG_BYTES, "byte string"))
    }

    /// Decodes an ascending string.
    pub fn decode_str(&mut self) -> Result<String, KeyDecodeError> {
        self.atomic(|r| r.string(ASC))
    }

    /// Decodes a descending string.
    pub fn decode_str_desc(&mut self) -> Result<String, KeyDecodeError> {
        self.atomic(|r| r.string(DESC))
    }

    /// Skips one ascending value of any type, checking that it is well formed
    /// (except for the UTF-8 validity of strings).
    pub fn skip_value(&mut self) -> Result<(), KeyDecodeError> {
        self.atomic(|r| r.skip(ASC))
    }

    /// Skips one descending value of any type, see [`KeyReader::skip_value`].
    pub fn skip_value_desc(&mut self) -> Result<(), KeyDecodeError> {
        self.atomic(|r| r.skip(DESC))
    }

    /// Runs `f`, rewinding the cursor if it fails.
    fn atomic<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, KeyDecodeError>,
    ) -> Result<T, KeyDecodeError> {
        let start = self.pos;
        let result = f(self);
        if result.is_err() {
            self.pos = start;
        }
        result
    }

    /// The next byte with `mask` undone, without advancing.
    fn peek_tag(&self, mask: u8) -> Option<u8> {
        self.buf.get(self.pos).map(|b| b ^ mask)
    }

    /// Reads one byte and undoes `mask`.
    fn next_byte(&mut self, mask: u8, expected: &'static str) -> Result<u8, KeyDecodeError> {
        let b = self.buf.get(self.pos).ok_or(KeyDecodeError::Truncated {
            position: self.pos,
            expected,
        })?;
        self.pos += 1;
        Ok(b ^ mask)
    }

    /// Reads a tag and checks that it is `tag`.
    fn expect_tag(
        &mut self,
        mask: u8,
        tag: u8,
        expected: &'static str,
    ) -> Result<(), KeyDecodeError> {
        let position = self.pos;
        let found = self.next_byte(mask, expected)?;
        if found == tag {
            Ok(())
        } else {
            Err(KeyDecodeError::UnexpectedTag {
                position,
                found,
                expected,
            })
        }
    }

    /// Reads 8 payload bytes and undoes `mask`.
    fn fixed8(&mut self, mask: u8, expected: &'static str) -> Result<u64, KeyDecodeError> {
        let bytes = self
            .buf
            .get(self.pos..self.pos + 8)
            .ok_or(KeyDecodeError::Truncated {
                position: self.pos,
                expected,
            })?;
        let mut array = [0u8; 8];
        for (dst, src) in array.iter_mut().zip(bytes) {
            *dst = src ^ mask;
        }
        self.pos += 8;
        Ok(u64::from_be_bytes(array))
    }

    fn bool(&mut self, mask: u8) -> Result<bool, KeyDecodeError> {
        let position = self.pos;
        match self.next_byte(mask, "boolean")? {
            TAG_FALSE => Ok(false),
            TAG_TRUE => Ok(true),
            found => Err(KeyDecodeError::UnexpectedTag {
                position,
                found,
                expected: "boolean",
            }),
        }
    }

    fn i64(&mut self, mask: u8) -> Result<i64, KeyDecodeError> {
        self.expect_tag(mask, TAG_INT, "integer")?;
        Ok((self.fixed8(mask, "integer")? ^ SIGN_BIT) as i64)
    }

    fn u64(&mut self, mask: u8) -> Result<u64, KeyDecodeError> {
        self.expect_tag(mask, TAG_UINT, "unsigned integer")?;
        self.fixed8(mask, "unsigned integer")
    }

    fn f64(&mut self, mask: u8) -> Result<f64, KeyDecodeError> {
        let position = self.pos;
        self.expect_tag(mask, TAG_FLOAT, "float")?;
        let ordered = self.fixed8(mask, "float")?;
        let bits = if ordered & SIGN_BIT != 0 {
            ordered ^ SIGN_BIT
        } else {
            !ordered
        };
        let v = f64::from_bits(bits);
        if bits == SIGN_BIT || (v.is_nan() && bits != CANONICAL_NAN_BITS) {
            return Err(KeyDecodeError::NonCanonicalFloat { position });
        }
        Ok(v)
    }

    /// Reads an escaped, terminated payload, appending the unescaped bytes to
    /// `out` if given.
    fn escaped(&mut self, mask: u8, mut out: Option<&mut Vec<u8>>) -> Result<(), KeyDecodeError> {
        // The escape byte as it appears in the buffer.
        let raw_escape = ESCAPE ^ mask;
        loop {
            let rest = &self.buf[self.pos..];
            let Some(n) = rest.iter().position(|&b| b == raw_escape) else {
                self.pos = self.buf.len();
                return Err(KeyDecodeError::Truncated {
                    position: self.pos,
                    expected: "byte string terminator",
                });
            };
            if let Some(out) = out.as_deref_mut() {
                if mask == ASC {
                    out.extend_from_slice(&rest[..n]);
                } else {
                    out.extend(rest[..n].iter().map(|b| b ^ mask));
                }
            }
            self.pos += n + 1;
            let position = self.pos;
            match self.next_byte(mask, "byte string terminator")? {
                ESCAPED_ZERO => {
                    if let Some(out) = out.as_deref_mut() {
                        out.push(0x00);
                    }
                }
                TERMINATOR => return Ok(()),
                found => return Err(KeyDecodeError::InvalidEscape { position, found }),
            }
        }
    }

    fn bytes(
        &mut self,
        mask: u8,
        tag: u8,
        expected: &'static str,
    ) -> Result<Vec<u8>, KeyDecodeError> {
        self.expect_tag(mask, tag, expected)?;
        let mut out = Vec::new();
        self.escaped(mask, Some(&mut out))?;
        Ok(out)
    }

    fn string(&mut self, mask: u8) -> Result<String, KeyDecodeError> {
        let position = self.pos;
        let bytes = self.bytes(mask, TAG_STRING, "string")?;
        String::from_utf8(bytes).map_err(|_| KeyDecodeError::InvalidUtf8 { position })
    }

    fn skip(&mut self, mask: u8) -> Result<(), KeyDecodeError> {
        let position = self.pos;
        match self.next_byte(mask, "value")? {
            TAG_NULL | TAG_FALSE | TAG_TRUE => Ok(()),
            TAG_INT | TAG_UINT => self.fixed8(mask, "integer").map(drop),
            TAG_FLOAT => {
                self.pos = position;
                self.f64(mask).map(drop)
            }
            TAG_BYTES | TAG_STRING => self.escaped(mask, None),
            found => Err(KeyDecodeError::UnexpectedTag {
                position,
                found,
                expected: "value",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Ordering;

    fn enc(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut buf = Vec::new();
        f(&mut buf);
        buf
    }

    /// The SQL order of floats: NaN equals NaN and is greatest; -0.0 == 0.0.
    fn sql_cmp_f64(a: f64, b: f64) -> Ordering {
        match (a.is_nan(), b.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => a.partial_cmp(&b).unwrap(),
        }
    }

    fn same_f64(a: f64, b: f64) -> bool {
        sql_cmp_f64(a, b) == Ordering::Equal
    }

    fn any_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            proptest::num::f64::ANY,
            proptest::num::f64::ANY,
            Just(0.0),
            Just(-0.0),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::NAN),
            Just(-f64::NAN),
            Just(f64::from_bits(0x7FF0_0000_0000_0001)),
            Just(f64::MIN_POSITIVE),
            Just(-f64::MIN_POSITIVE),
            Just(f64::MAX),
            Just(f64::MIN),
            (-1000i32..1000).prop_map(f64::from),
        ]
    }

    fn any_i64() -> impl Strategy<Value = i64> {
        prop_oneof![
            any::<i64>(),
            -300i64..300,
            Just(i64::MIN),
            Just(i64::MAX),
            Just(i64::MIN + 1),
            Just(i64::MAX - 1),
        ]
    }

    fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
        // Small alphabets make shared prefixes and escape bytes common.
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..16),
            proptest::collection::vec(
                prop_oneof![Just(0x00u8), Just(0x01), Just(0xFE), Just(0xFF)],
                0..8
            ),
        ]
    }

    #[test]
    fn documented_examples() {
        assert_eq!(enc(encode_null), [0x01]);
        assert_eq!(
            enc(|b| encode_i64(b, -1)),
            [0x20, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(enc(|b| encode_i64(b, 0)), [0x20, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(enc(|b| encode_u64(b, 5)), [0x28, 0, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(
            enc(|b| encode_f64(b, 1.0)),
            [0x30, 0xBF, 0xF0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            enc(|b| encode_f64(b, -1.0)),
            [0x30, 0x40, 0x0F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(enc(|b| encode_bytes(b, b"")), [0x40, 0x00, 0x01]);
        assert_eq!(
            enc(|b| encode_bytes(b, b"a\0")),
            [0x40, 0x61, 0x00, 0xFF, 0x00, 0x01]
        );
        assert_eq!(enc(|b| encode_str(b, "ab")), [0x48, 0x61, 0x62, 0x00, 0x01]);
        assert_eq!(enc(encode_null_desc), [0xFE]);
        assert_eq!(
            enc(|b| encode_bytes_desc(b, b"a\0")),
            [0xBF, 0x9E, 0xFF, 0x00, 0xFF, 0xFE]
        );
    }

    #[test]
    fn integer_edge_cases() {
        let values = [
            i64::MIN,
            i64::MIN + 1,
            -256,
            -1,
            0,
            1,
            255,
            i64::MAX - 1,
            i64::MAX,
        ];
        let encoded: Vec<_> = values.iter().map(|&v| enc(|b| encode_i64(b, v))).collect();
        assert!(encoded.windows(2).all(|w| w[0] < w[1]));
        let desc: Vec<_> = values
            .iter()
            .map(|&v| enc(|b| encode_i64_desc(b, v)))
            .collect();
        assert!(desc.windows(2).all(|w| w[0] > w[1]));
        for (&v, (a, d)) in values.iter().zip(encoded.iter().zip(&desc)) {
            assert_eq!(KeyReader::new(a).decode_i64(), Ok(v));
            assert_eq!(KeyReader::new(d).decode_i64_desc(), Ok(v));
        }
        for v in [0, 1, u64::MAX / 2, u64::MAX] {
            assert_eq!(
                KeyReader::new(&enc(|b| encode_u64(b, v))).decode_u64(),
                Ok(v)
            );
            assert_eq!(
                KeyReader::new(&enc(|b| encode_u64_desc(b, v))).decode_u64_desc(),
                Ok(v)
            );
        }
        assert!(enc(|b| encode_u64(b, 0)) < enc(|b| encode_u64(b, u64::MAX)));
    }

    #[test]
    fn float_edge_cases() {
        let values = [
            f64::NEG_INFINITY,
            f64::MIN,
            -1.0,
            -f64::MIN_POSITIVE,
            -f64::from_bits(1),
            0.0,
            f64::from_bits(1),
            f64::MIN_POSITIVE,
            1.0,
            f64::MAX,
            f64::INFINITY,
            f64::NAN,
        ];
        let encoded: Vec<_> = values.iter().map(|&v| enc(|b| encode_f64(b, v))).collect();
        assert!(encoded.windows(2).all(|w| w[0] < w[1]));
        for (&v, e) in values.iter().zip(&encoded) {
            let d = KeyReader::new(e).decode_f64().unwrap();
            assert!(same_f64(v, d) && (v.is_nan() || v.to_bits() == d.to_bits()));
        }
        // Both zeros and all NaNs have one encoding each.
        assert_eq!(enc(|b| encode_f64(b, -0.0)), enc(|b| encode_f64(b, 0.0)));
        assert_eq!(
            enc(|b| encode_f64_desc(b, -0.0)),
            enc(|b| encode_f64_desc(b, 0.0))
        );
        let nan = enc(|b| encode_f64(b, f64::NAN));
        assert_eq!(enc(|b| encode_f64(b, -f64::NAN)), nan);
        assert_eq!(
            enc(|b| encode_f64(b, f64::from_bits(0x7FF0_0000_0000_0001))),
            nan
        );
        assert_eq!(enc(|b| encode_f64(b, f64::from_bits(u64::MAX))), nan);
        let zero = KeyReader::new(&enc(|b| encode_f64(b, -0.0)))
            .decode_f64()
            .unwrap();
        assert_eq!(zero.to_bits(), 0);
        assert!(KeyReader::new(&enc(|b| encode_f64_desc(b, f64::NAN)))
            .decode_f64_desc()
            .unwrap()
            .is_nan());
        // NaN sorts first in a descending column.
        assert!(enc(|b| encode_f64_desc(b, f64::NAN)) < enc(|b| encode_f64_desc(b, f64::INFINITY)));
    }

    #[test]
    fn byte_string_edge_cases() {
        let values: [&[u8]; 9] = [
            b"",
            b"\x00",
            b"\x00\x00",
            b"\x00\xFF",
            b"\x01",
            b"a",
            b"a\x00",
            b"a\x00b",
            b"\xFF\xFF",
        ];
        let encoded: Vec<_> = values.iter().map(|v| enc(|b| encode_bytes(b, v))).collect();
        assert!(encoded.windows(2).all(|w| w[0] < w[1]));
        let desc: Vec<_> = values
            .iter()
            .map(|v| enc(|b| encode_bytes_desc(b, v)))
            .collect();
        assert!(desc.windows(2).all(|w| w[0] > w[1]));
        for (v, (a, d)) in values.iter().zip(encoded.iter().zip(&desc)) {
            assert_eq!(KeyReader::new(a).decode_bytes().as_deref(), Ok(*v));
            assert_eq!(KeyReader::new(d).decode_bytes_desc().as_deref(), Ok(*v));
        }
        for s in ["", "a", "\0", "héllo", "日本語", "\u{10FFFF}"] {
            assert_eq!(
                KeyReader::new(&enc(|b| encode_str(b, s)))
                    .decode_str()
                    .as_deref(),
                Ok(s)
            );
            assert_eq!(
                KeyReader::new(&enc(|b| encode_str_desc(b, s)))
                    .decode_str_desc()
                    .as_deref(),
                Ok(s)
            );
        }
    }

    #[test]
    fn nulls_and_bools() {
        let null = enc(encode_null);
        let others = [
            enc(|b| encode_bool(b, false)),
            enc(|b| encode_i64(b, i64::MIN)),
            enc(|b| encode_u64(b, 0)),
            enc(|b| encode_f64(b, f64::NEG_INFINITY)),
            enc(|b| encode_bytes(b, b"")),
            enc(|b| encode_str(b, "")),
        ];
        assert!(others.iter().all(|o| null < *o));
        let null_desc = enc(encode_null_desc);
        let others_desc = [
            enc(|b| encode_bool_desc(b, true)),
            enc(|b| encode_i64_desc(b, i64::MAX)),
            enc(|b| encode_u64_desc(b, u64::MAX)),
            enc(|b| encode_f64_desc(b, f64::NAN)),
            enc(|b| encode_bytes_desc(b, &[0xFF; 32])),
            enc(|b| encode_str_desc(b, "\u{10FFFF}")),
        ];
        assert!(others_desc.iter().all(|o| null_desc > *o));

        let mut key = KeyWriter::new();
        key.write_null()
            .write_null_desc()
            .write_bool(true)
            .write_bool_desc(false);
        let mut r = KeyReader::new(key.as_bytes());
        assert!(r.is_null() && !r.is_null_desc());
        r.decode_null().unwrap();
        assert!(r.is_null_desc() && !r.is_null());
        r.decode_null_desc().unwrap();
        assert!(!r.is_null());
        assert_eq!(r.decode_bool(), Ok(true));
        assert_eq!(r.decode_bool_desc(), Ok(false));
        assert!(r.is_at_end() && !r.is_null() && !r.is_null_desc());
        assert!(enc(|b| encode_bool(b, false)) < enc(|b| encode_bool(b, true)));
        assert!(enc(|b| encode_bool_desc(b, false)) > enc(|b| encode_bool_desc(b, true)));
    }

    #[test]
    fn writer_and_skip() {
        let mut w = KeyWriter::with_prefix(b"/t/");
        assert_eq!(w.len(), 3);
        w.write_i64(-5)
            .write_u64_desc(9)
            .write_f64(2.5)
            .write_bytes_desc(b"x\0y")
            .write_str("z")
            .write_null()
            .write_bool_desc(true)
            .write_raw(b"!");
        let key = w.clone().into_bytes();
        assert_eq!(key, w.as_bytes());
        let mut r = KeyReader::new(&key[3..]);
        assert_eq!(r.decode_i64(), Ok(-5));
        assert_eq!(r.decode_u64_desc(), Ok(9));
        assert_eq!(r.decode_f64(), Ok(2.5));
        assert_eq!(r.decode_bytes_desc(), Ok(b"x\0y".to_vec()));
        assert_eq!(r.decode_str(), Ok("z".to_string()));
        r.decode_null().unwrap();
        assert_eq!(r.decode_bool_desc(), Ok(true));
        assert_eq!(r.remaining(), b"!");

        let mut s = KeyReader::new(&key[3..]);
        for desc in [false, true, false, true, false, false, true] {
            if desc {
                s.skip_value_desc().unwrap();
            } else {
                s.skip_value().unwrap();
            }
        }
        assert_eq!(s.position(), key.len() - 4);
        assert!(KeyWriter::new().is_empty());
        assert_eq!(KeyWriter::from_vec(vec![1]).write_null().as_bytes(), [1, 1]);
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b""), None);
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[0x01, 0xFF, 0xFF]), Some(vec![0x02]));
        assert_eq!(prefix_end(&[0x01, 0xFE, 0xFF]), Some(vec![0x01, 0xFF]));
        assert_eq!(prefix_end(&[0x00]), Some(vec![0x01]));
    }

    #[test]
    fn corrupt_input_is_an_error() {
        use KeyDecodeError::*;
        // Empty input.
        assert!(matches!(
            KeyReader::new(&[]).decode_i64(),
            Err(Truncated { position: 0, .. })
        ));
        assert!(matches!(
            KeyReader::new(&[]).decode_null(),
            Err(Truncated { .. })
        ));
        assert!(matches!(
            KeyReader::new(&[]).skip_value(),
            Err(Truncated { .. })
        ));
        // Wrong or unknown tags.
        let int = enc(|b| encode_i64(b, 1));
        assert_eq!(
            KeyReader::new(&int).decode_u64(),
            Err(UnexpectedTag {
                position: 0,
                found: TAG_INT,
                expected: "unsigned integer"
            })
        );
        assert!(matches!(
            KeyReader::new(&int).decode_i64_desc(),
            Err(UnexpectedTag { .. })
        ));
        assert!(matches!(
            KeyReader::new(&int).decode_bool(),
            Err(UnexpectedTag { .. })
        ));
        assert!(matches!(
            KeyReader::new(&int).decode_null(),
            Err(UnexpectedTag { .. })
        ));
        assert!(matches!(
            KeyReader::new(&[0x77]).skip_value(),
            Err(UnexpectedTag { found: 0x77, .. })
        ));
        assert!(matches!(
            KeyReader::new(&[0x00]).skip_value_desc(),
            Err(UnexpectedTag { found: 0xFF, .. })
        ));
        // Bad escapes.
        assert_eq!(
            KeyReader::new(&[TAG_BYTES, b'a', 0x00, 0x02]).decode_bytes(),
            Err(InvalidEscape {
                position: 3,
                found: 0x02
            })
        );
        assert!(matches!(
            KeyReader::new(&[!TAG_BYTES, 0xFF, 0xFF]).decode_bytes_desc(),
            Err(InvalidEscape { .. })
        ));
        assert!(matches!(
            KeyReader::new(&[TAG_BYTES, 0x00, 0x00]).skip_value(),
            Err(InvalidEscape { .. })
        ));
        // Missing terminator.
        assert!(matches!(
            KeyReader::new(&[TAG_BYTES, b'a']).decode_bytes(),
            Err(Truncated { position: 2, .. })
        ));
        assert!(matches!(
            KeyReader::new(&[TAG_BYTES, b'a', 0x00]).decode_bytes(),
            Err(Truncated { .. })
        ));
        // Invalid UTF-8.
        assert_eq!(
            KeyReader::new(&[TAG_STRING, 0xC3, 0x00, 0x01]).decode_str(),
            Err(InvalidUtf8 { position: 0 })
        );
        let mut bad = vec![0x00; 1];
        encode_bytes_desc(&mut bad, &[0x80]);
        bad[1] = !TAG_STRING;
        assert_eq!(
            KeyReader::new(&bad[1..]).decode_str_desc(),
            Err(InvalidUtf8 { position: 0 })
        );
        // Non-canonical floats: negative zero and a NaN with a payload.
        let mut neg_zero = vec![TAG_FLOAT];
        neg_zero.extend_from_slice(&(!(-0.0f64).to_bits()).to_be_bytes());
        assert_eq!(
            KeyReader::new(&neg_zero).decode_f64(),
            Err(NonCanonicalFloat { position: 0 })
        );
        assert!(KeyReader::new(&neg_zero).skip_value().is_err());
        let mut odd_nan = vec![TAG_FLOAT];
        odd_nan.extend_from_slice(&(0x7FF0_0000_0000_0001u64 | SIGN_BIT).to_be_bytes());
        assert_eq!(
            KeyReader::new(&odd_nan).decode_f64(),
            Err(NonCanonicalFloat { position: 0 })
        );
        // A failed decode does not advance the reader.
        let mut r = KeyReader::new(&[TAG_BYTES, b'a', 0x00, 0x02]);
        assert!(r.decode_bytes().is_err());
        assert_eq!(r.position(), 0);
        assert!(r.skip_value().is_err());
        assert_eq!(r.position(), 0);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut w = KeyWriter::new();
        w.write_i64(3)
            .write_f64_desc(-2.0)
            .write_bytes(b"a\0b")
            .write_str_desc("é")
            .write_u64(7);
        let key = w.into_bytes();
        let decode_all = |bytes: &[u8]| -> Result<(), KeyDecodeError> {
            let mut r = KeyReader::new(bytes);
            r.decode_i64()?;
            r.decode_f64_desc()?;
            r.decode_bytes()?;
            r.decode_str_desc()?;
            r.decode_u64()?;
            Ok(())
        };
        decode_all(&key).unwrap();
        for len in 0..key.len() {
            assert!(
                matches!(
                    decode_all(&key[..len]),
                    Err(KeyDecodeError::Truncated { .. })
                ),
                "prefix of length {len}"
            );
        }
    }

    proptest! {
        #[test]
        fn prop_i64_order_and_round_trip(a in any_i64(), b in any_i64()) {
            let (ea, eb) = (enc(|x| encode_i64(x, a)), enc(|x| encode_i64(x, b)));
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
            let (da, db) = (enc(|x| encode_i64_desc(x, a)), enc(|x| encode_i64_desc(x, b)));
            prop_assert_eq!(a.cmp(&b).reverse(), da.cmp(&db));
            prop_assert_eq!(KeyReader::new(&ea).decode_i64(), Ok(a));
            prop_assert_eq!(KeyReader::new(&da).decode_i64_desc(), Ok(a));
        }

        #[test]
        fn prop_u64_order_and_round_trip(a in any::<u64>(), b in any::<u64>()) {
            let (ea, eb) = (enc(|x| encode_u64(x, a)), enc(|x| encode_u64(x, b)));
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
            let (da, db) = (enc(|x| encode_u64_desc(x, a)), enc(|x| encode_u64_desc(x, b)));
            prop_assert_eq!(a.cmp(&b).reverse(), da.cmp(&db));
            prop_assert_eq!(KeyReader::new(&ea).decode_u64(), Ok(a));
            prop_assert_eq!(KeyReader::new(&da).decode_u64_desc(), Ok(a));
        }

        #[test]
        fn prop_bool_order_and_round_trip(a in any::<bool>(), b in any::<bool>()) {
            let (ea, eb) = (enc(|x| encode_bool(x, a)), enc(|x| encode_bool(x, b)));
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
            let (da, db) = (enc(|x| encode_bool_desc(x, a)), enc(|x| encode_bool_desc(x, b)));
            prop_assert_eq!(a.cmp(&b).reverse(), da.cmp(&db));
            prop_assert_eq!(KeyReader::new(&ea).decode_bool(), Ok(a));
            prop_assert_eq!(KeyReader::new(&da).decode_bool_desc(), Ok(a));
        }

        #[test]
        fn prop_f64_order_and_round_trip(a in any_f64(), b in any_f64()) {
            let (ea, eb) = (enc(|x| encode_f64(x, a)), enc(|x| encode_f64(x, b)));
            prop_assert_eq!(sql_cmp_f64(a, b), ea.cmp(&eb));
            let (da, db) = (enc(|x| encode_f64_desc(x, a)), enc(|x| encode_f64_desc(x, b)));
            prop_assert_eq!(sql_cmp_f64(a, b).reverse(), da.cmp(&db));
            let back = KeyReader::new(&ea).decode_f64().unwrap();
            prop_assert!(same_f64(a, back));
            prop_assert!(a.is_nan() || a == 0.0 || a.to_bits() == back.to_bits());
            let back = KeyReader::new(&da).decode_f64_desc().unwrap();
            prop_assert!(same_f64(a, back));
        }

        #[test]
        fn prop_bytes_order_and_round_trip(a in any_bytes(), b in any_bytes()) {
            let (ea, eb) = (enc(|x| encode_bytes(x, &a)), enc(|x| encode_bytes(x, &b)));
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
            let (da, db) = (enc(|x| encode_bytes_desc(x, &a)), enc(|x| encode_bytes_desc(x, &b)));
            prop_assert_eq!(a.cmp(&b).reverse(), da.cmp(&db));
            prop_assert_eq!(KeyReader::new(&ea).decode_bytes(), Ok(a.clone()));
            prop_assert_eq!(KeyReader::new(&da).decode_bytes_desc(), Ok(a));
        }

        #[test]
        fn prop_str_order_and_round_trip(a in any::<String>(), b in "[a\u{0}\u{7f}é\u{10FFFF}]{0,6}") {
            let (ea, eb) = (enc(|x| encode_str(x, &a)), enc(|x| encode_str(x, &b)));
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
            let (da, db) = (enc(|x| encode_str_desc(x, &a)), enc(|x| encode_str_desc(x, &b)));
            prop_assert_eq!(a.cmp(&b).reverse(), da.cmp(&db));
            prop_assert_eq!(KeyReader::new(&ea).decode_str(), Ok(a.clone()));
            prop_assert_eq!(KeyReader::new(&da).decode_str_desc(), Ok(a));
        }

        #[test]
        fn prop_nullable_order(a in proptest::option::of(any_i64()), b in proptest::option::of(any_i64())) {
            // Rust orders None before Some, like the NULL tag.
            let asc = |v: Option<i64>| enc(|x| match v {
                None => encode_null(x),
                Some(v) => encode_i64(x, v),
            });
            let desc = |v: Option<i64>| enc(|x| match v {
                None => encode_null_desc(x),
                Some(v) => encode_i64_desc(x, v),
            });
            prop_assert_eq!(a.cmp(&b), asc(a).cmp(&asc(b)));
            prop_assert_eq!(a.cmp(&b).reverse(), desc(a).cmp(&desc(b)));
        }

        #[test]
        fn prop_tuple_order_and_round_trip(
            a in (any_i64(), any_bytes()),
            b in prop_oneof![
                (any_i64(), any_bytes()),
                // Often share the first column so the second one decides.
                any_bytes().prop_map(|v| (0, v)),
            ],
        ) {
            let a = if b.0 == 0 && a.0 % 2 == 0 { (0, a.1) } else { a };
            let key = |t: &(i64, Vec<u8>)| {
                let mut w = KeyWriter::new();
                w.write_i64(t.0).write_bytes(&t.1);
                w.into_bytes()
            };
            prop_assert_eq!(a.cmp(&b), key(&a).cmp(&key(&b)));
            // Mixed directions: first column ascending, second descending.
            let mixed = |t: &(i64, Vec<u8>)| {
                let mut w = KeyWriter::new();
                w.write_i64(t.0).write_bytes_desc(&t.1);
                w.into_bytes()
            };
            let expected = a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1).reverse());
            prop_assert_eq!(expected, mixed(&a).cmp(&mixed(&b)));

            let ka = key(&a);
            let mut r = KeyReader::new(&ka);
            prop_assert_eq!(r.decode_i64(), Ok(a.0));
            prop_assert_eq!(r.decode_bytes(), Ok(a.1.clone()));
            prop_assert!(r.is_at_end());
            let ma = mixed(&a);
            let mut r = KeyReader::new(&ma);
            r.skip_value().unwrap();
            prop_assert_eq!(r.decode_bytes_desc(), Ok(a.1));
            prop_assert!(r.is_at_end());
        }

        #[test]
        fn prop_prefix_end_bounds_prefixed_keys(prefix in any_bytes(), suffix in any_bytes()) {
            let mut key = prefix.clone();
            key.extend_from_slice(&suffix);
            match prefix_end(&prefix) {
                Some(end) => {
                    prop_assert!(key < end);
                    prop_assert!(prefix < end);
                    prop_assert!(!end.starts_with(&prefix));
                }
                None => prop_assert!(prefix.iter().all(|&b| b == 0xFF)),
            }
        }

        #[test]
        fn prop_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            let mut r = KeyReader::new(&bytes);
            let _ = r.clone().decode_null();
            let _ = r.clone().decode_null_desc();
            let _ = r.clone().decode_bool();
            let _ = r.clone().decode_bool_desc();
            let _ = r.clone().decode_i64();
            let _ = r.clone().decode_i64_desc();
            let _ = r.clone().decode_u64();
            let _ = r.clone().decode_u64_desc();
            let _ = r.clone().decode_f64();
            let _ = r.clone().decode_f64_desc();
            let _ = r.clone().decode_bytes();
            let _ = r.clone().decode_bytes_desc();
            let _ = r.clone().decode_str();
            let _ = r.clone().decode_str_desc();
            let _ = r.clone().skip_value_desc();
            while r.skip_value().is_ok() {}
            prop_assert!(r.position() <= bytes.len());
        }
    }
}
