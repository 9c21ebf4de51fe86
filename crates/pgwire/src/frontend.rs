//! Framing and decoding of frontend (client) messages.
//!
//! Every message is read whole into its own buffer before it is decoded, and
//! decoding is bounds-checked: a malformed message is a [`ProtocolError`],
//! never a panic and never a misframed stream. (pgwire's own decoder reads
//! bodies straight from the shared read buffer and panics on short ones, so
//! only its backend encoders are used.)

use std::fmt;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest startup packet accepted (PostgreSQL's `MAX_STARTUP_PACKET_LENGTH`).
pub(crate) const MAX_STARTUP_PACKET: usize = 10_000;
/// Largest Query, Parse, Bind or CopyData message (PostgreSQL's
/// `PQ_LARGE_MESSAGE_LIMIT`, 1 GiB - 1).
pub(crate) const MAX_LARGE_MESSAGE: usize = 0x3fff_ffff;
/// Largest password/SASL message (PostgreSQL's `PG_MAX_AUTH_TOKEN_LENGTH`).
pub(crate) const MAX_AUTH_MESSAGE: usize = 65_535;
/// Largest message of any other type (PostgreSQL's `PQ_SMALL_MESSAGE_LIMIT`).
pub(crate) const MAX_SMALL_MESSAGE: usize = 10_000;

const SSL_REQUEST_CODE: u32 = 80_877_103;
const GSSENC_REQUEST_CODE: u32 = 80_877_104;
const CANCEL_REQUEST_CODE: u32 = 80_877_102;

/// A message that breaks the protocol; the connection answers 08P01 (or the
/// given code) and closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProtocolError {
    /// SQLSTATE.
    pub code: &'static str,
    /// What was wrong.
    pub message: String,
}

impl ProtocolError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            code: tessera_sql::code::PROTOCOL_VIOLATION,
            message: message.into(),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.code)
    }
}

/// What reading a message can fail with.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The socket failed or closed mid-message.
    Io(std::io::Error),
    /// The bytes are not a valid message.
    Protocol(ProtocolError),
}

impl From<std::io::Error> for ReadError {
    fn from(err: std::io::Error) -> Self {
        ReadError::Io(err)
    }
}

impl From<ProtocolError> for ReadError {
    fn from(err: ProtocolError) -> Self {
        ReadError::Protocol(err)
    }
}

/// The first packet of a connection (it has no type byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartupPacket {
    /// SSLRequest: answered 'N' (no TLS yet).
    SslRequest,
    /// GSSENCRequest: answered 'N'.
    GssEncRequest,
    /// CancelRequest for the backend `pid` with its secret key.
    Cancel {
        /// Backend process id from BackendKeyData.
        pid: i32,
        /// Secret key from BackendKeyData.
        secret: Vec<u8>,
    },
    /// StartupMessage with its protocol version and parameters.
    Startup {
        /// Major protocol version (3).
        major: u16,
        /// Minor protocol version.
        minor: u16,
        /// Parameters in the order sent (user, database, options, ...).
        params: Vec<(String, String)>,
    },
}

/// Describe and Close name a prepared statement or a portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// 'S'.
    Statement,
    /// 'P'.
    Portal,
}

/// A message after startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrontendMessage {
    /// 'Q'.
    Query(String),
    /// 'P'.
    Parse {
        name: String,
        query: String,
        param_types: Vec<u32>,
    },
    /// 'B'.
    Bind {
        portal: String,
        statement: String,
        param_formats: Vec<i16>,
        params: Vec<Option<Bytes>>,
        result_formats: Vec<i16>,
    },
    /// 'D'.
    Describe { target: Target, name: String },
    /// 'E'.
    Execute { portal: String, max_rows: i32 },
    /// 'C'.
    Close { target: Target, name: String },
    /// 'S'.
    Sync,
    /// 'H'.
    Flush,
    /// 'X'.
    Terminate,
    /// 'd'.
    CopyData(Bytes),
    /// 'c'.
    CopyDone,
    /// 'f'.
    CopyFail(String),
    /// 'p': PasswordMessage, SASLInitialResponse or SASLResponse; which one
    /// depends on the authentication exchange, so the body is kept raw.
    Password(Bytes),
    /// A well-framed message of type `kind` whose text is not valid UTF-8.
    /// PostgreSQL answers this with an ordinary ERROR (22021), not by
    /// closing the connection.
    BadEncoding { kind: u8, message: String },
}

impl FrontendMessage {
    /// Is this an extended-query message (an error in it skips to Sync)?
    pub(crate) fn is_extended(&self) -> bool {
        matches!(
            self,
            FrontendMessage::Parse { .. }
                | FrontendMessage::Bind { .. }
                | FrontendMessage::Describe { .. }
                | FrontendMessage::Execute { .. }
                | FrontendMessage::Close { .. }
                | FrontendMessage::Sync
                | FrontendMessage::Flush
        ) || matches!(self, FrontendMessage::BadEncoding { kind, .. } if *kind != b'Q')
    }
}

fn max_length(kind: u8) -> usize {
    match kind {
        b'Q' | b'P' | b'B' | b'd' => MAX_LARGE_MESSAGE,
        b'p' => MAX_AUTH_MESSAGE,
        _ => MAX_SMALL_MESSAGE,
    }
}

/// Reads exactly `len` bytes, growing the buffer as data arrives so that a
/// forged length cannot make us allocate up front.
async fn read_body<R: AsyncRead + Unpin>(reader: &mut R, len: usize) -> std::io::Result<Bytes> {
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    let read = (&mut *reader)
        .take(len as u64)
        .read_to_end(&mut body)
        .await?;
    if read != len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Bytes::from(body))
}

/// Reads the connection's first packet (or the one after an SSL/GSS
/// refusal). `None` on a clean EOF before any byte.
pub(crate) async fn read_startup<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<StartupPacket>, ReadError> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len[..1]).await {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err.into()),
    }
    reader.read_exact(&mut len[1..]).await?;
    let len = u32::from_be_bytes(len) as usize;
    if !(8..=MAX_STARTUP_PACKET).contains(&len) {
        return Err(ProtocolError::new("invalid length of startup packet").into());
    }
    let body = read_body(reader, len - 4).await?;
    Ok(Some(decode_startup(&body)?))
}

/// Decodes a startup packet body (after its length).
pub(crate) fn decode_startup(body: &[u8]) -> Result<StartupPacket, ProtocolError> {
    let mut r = Reader::new(body);
    let code = r.u32()?;
    match code {
        SSL_REQUEST_CODE => Ok(StartupPacket::SslRequest),
        GSSENC_REQUEST_CODE => Ok(StartupPacket::GssEncRequest),
        CANCEL_REQUEST_CODE => {
            let pid = r.i32()?;
            let secret = r.rest().to_vec();
            if secret.len() < 4 || secret.len() > 256 {
                return Err(ProtocolError::new(
                    "invalid length of cancel request packet",
                ));
            }
            Ok(StartupPacket::Cancel { pid, secret })
        }
        _ => {
            let (major, minor) = ((code >> 16) as u16, (code & 0xffff) as u16);
            let mut params = Vec::new();
            if major == 3 {
                // name\0value\0 ... \0
                loop {
                    let name = r.cstr()?;
                    if name.is_empty() {
                        break;
                    }
                    let value = r.cstr()?;
                    params.push((name, value));
                }
            }
            Ok(StartupPacket::Startup {
                major,
                minor,
                params,
            })
        }
    }
}

/// Reads one typed message: its type byte and whole body. `None` on a clean
/// EOF between messages.
pub(crate) async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<(u8, Bytes)>, ReadError> {
    let mut kind = [0u8; 1];
    match reader.read_exact(&mut kind).await {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err.into()),
    }
    let kind = kind[0];
    let mut len = [0u8; 4];
    reader.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len < 4 || len - 4 > max_length(kind) {
        return Err(ProtocolError::new(format!(
            "invalid message length {len} for message type \"{}\"",
            kind.escape_ascii()
        ))
        .into());
    }
    let body = read_body(reader, len - 4).await?;
    Ok(Some((kind, body)))
}

/// Decodes a typed message body.
pub(crate) fn decode_message(kind: u8, body: Bytes) -> Result<FrontendMessage, ProtocolError> {
    match decode_body(kind, body) {
        Err(err) if err.code == ENCODING_ERROR => Ok(FrontendMessage::BadEncoding {
            kind,
            message: err.message,
        }),
        other => other,
    }
}

/// SQLSTATE character_not_in_repertoire: text that is not valid UTF-8.
pub(crate) const ENCODING_ERROR: &str = "22021";

fn decode_body(kind: u8, body: Bytes) -> Result<FrontendMessage, ProtocolError> {
    let mut r = Reader::new(&body);
    let message = match kind {
        b'Q' => FrontendMessage::Query(r.cstr()?),
        b'P' => {
            let name = r.cstr()?;
            let query = r.cstr()?;
            let count = r.count()?;
            let mut param_types = Vec::with_capacity(count.min(r.remaining() / 4));
            for _ in 0..count {
                param_types.push(r.u32()?);
            }
            FrontendMessage::Parse {
                name,
                query,
                param_types,
            }
        }
        b'B' => {
            let portal = r.cstr()?;
            let statement = r.cstr()?;
            let count = r.count()?;
            let mut param_formats = Vec::with_capacity(count.min(r.remaining() / 2));
            for _ in 0..count {
                param_formats.push(r.i16()?);
            }
            let count = r.count()?;
            let mut params = Vec::with_capacity(count.min(r.remaining() / 4));
            for _ in 0..count {
                let len = r.i32()?;
                params.push(match len {
                    -1 => None,
                    n if n < 0 => {
                        return Err(ProtocolError::new(format!("invalid parameter length {n}")))
                    }
                    n => Some(body.slice_ref(r.bytes(n as usize)?)),
                });
            }
            let count = r.count()?;
            let mut result_formats = Vec::with_capacity(count.min(r.remaining() / 2));
            for _ in 0..count {
                result_formats.push(r.i16()?);
            }
            FrontendMessage::Bind {
                portal,
                statement,
                param_formats,
                params,
                result_formats,
            }
        }
        b'D' => {
            let target = r.target()?;
            FrontendMessage::Describe {
                target,
                name: r.cstr()?,
            }
        }
        b'E' => {
            let portal = r.cstr()?;
            FrontendMessage::Execute {
                portal,
                max_rows: r.i32()?,
            }
        }
        b'C' => {
            let target = r.target()?;
            FrontendMessage::Close {
                target,
                name: r.cstr()?,
            }
        }
        b'S' => FrontendMessage::Sync,
        b'H' => FrontendMessage::Flush,
        b'X' => FrontendMessage::Terminate,
        b'd' => return Ok(FrontendMessage::CopyData(body)),
        b'c' => FrontendMessage::CopyDone,
        b'f' => FrontendMessage::CopyFail(r.cstr()?),
        b'p' => return Ok(FrontendMessage::Password(body)),
        other => {
            return Err(ProtocolError::new(format!(
                "invalid frontend message type {other}"
            )))
        }
    };
    r.finish()?;
    Ok(message)
}

/// A bounds-checked cursor over a message body.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if n > self.buf.len() {
            return Err(ProtocolError::new("insufficient data left in message"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn i16(&mut self) -> Result<i16, ProtocolError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, ProtocolError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, ProtocolError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// An Int16 element count (unsigned on the wire, as PostgreSQL reads it).
    fn count(&mut self) -> Result<usize, ProtocolError> {
        Ok(u16::from_be_bytes(self.array()?) as usize)
    }

    fn target(&mut self) -> Result<Target, ProtocolError> {
        match self.u8()? {
            b'S' => Ok(Target::Statement),
            b'P' => Ok(Target::Portal),
            other => Err(ProtocolError::new(format!(
                "invalid DESCRIBE/CLOSE message subtype {other}"
            ))),
        }
    }

    /// A NUL-terminated UTF-8 string.
    pub(crate) fn cstr(&mut self) -> Result<String, ProtocolError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| ProtocolError::new("invalid string in message"))?;
        let s = std::str::from_utf8(&self.buf[..end]).map_err(|_| ProtocolError {
            code: ENCODING_ERROR,
            message: "invalid byte sequence for encoding \"UTF8\"".into(),
        })?;
        self.buf = &self.buf[end + 1..];
        Ok(s.to_string())
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Fails if bytes are left over (PostgreSQL's `pq_getmsgend`).
    pub(crate) fn finish(&self) -> Result<(), ProtocolError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::new("invalid message format"))
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use pgwire::messages::extendedquery::{Bind, Close, Describe, Execute, Parse, Sync};
    use pgwire::messages::simplequery::Query;
    use pgwire::messages::PgWireFrontendMessage;

    use super::*;

    /// Encodes with pgwire's encoder, decodes with ours.
    fn round_trip(message: PgWireFrontendMessage) -> FrontendMessage {
        let mut buf = BytesMut::new();
        message.encode(&mut buf).unwrap();
        let kind = buf[0];
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        assert_eq!(len + 1, buf.len());
        decode_message(kind, buf.freeze().slice(5..)).unwrap()
    }

    #[test]
    fn decodes_what_pgwire_encodes() {
        assert_eq!(
            round_trip(PgWireFrontendMessage::Query(Query::new("SELECT 1".into()))),
            FrontendMessage::Query("SELECT 1".into())
        );
        assert_eq!(
            round_trip(PgWireFrontendMessage::Parse(Parse::new(
                Some("s1".into()),
                "SELECT $1".into(),
                vec![23, 0]
            ))),
            FrontendMessage::Parse {
                name: "s1".into(),
                query: "SELECT $1".into(),
                param_types: vec![23, 0]
            }
        );
        assert_eq!(
            round_trip(PgWireFrontendMessage::Bind(Bind::new(
                None,
                Some("s1".into()),
                vec![1],
                vec![Some(Bytes::from_static(&[0, 0, 0, 7])), None],
                vec![0, 1]
            ))),
            FrontendMessage::Bind {
                portal: String::new(),
                statement: "s1".into(),
                param_formats: vec![1],
                params: vec![Some(Bytes::from_static(&[0, 0, 0, 7])), None],
                result_formats: vec![0, 1],
            }
        );
        assert_eq!(
            round_trip(PgWireFrontendMessage::Describe(Describe::new(
                b'S',
                Some("s1".into())
            ))),
            FrontendMessage::Describe {
                target: Target::Statement,
                name: "s1".into()
            }
        );
        assert_eq!(
            round_trip(PgWireFrontendMessage::Execute(Execute::new(None, 10))),
            FrontendMessage::Execute {
                portal: String::new(),
                max_rows: 10
            }
        );
        assert_eq!(
            round_trip(PgWireFrontendMessage::Close(Close::new(
                b'P',
                Some("p".into())
            ))),
            FrontendMessage::Close {
                target: Target::Portal,
                name: "p".into()
            }
        );
        assert_eq!(
            round_trip(PgWireFrontendMessage::Sync(Sync::new())),
            FrontendMessage::Sync
        );
    }

    #[test]
    fn text_that_is_not_utf8_is_an_ordinary_error() {
        let decoded = decode_message(b'Q', Bytes::from_static(b"SELECT \xff\0")).unwrap();
        assert!(matches!(
            decoded,
            FrontendMessage::BadEncoding { kind: b'Q', .. }
        ));
        assert!(!decoded.is_extended());
        let parse = decode_message(b'P', Bytes::from_static(b"\xfe\0SELECT 1\0\0\0")).unwrap();
        assert!(parse.is_extended());
        // A framing error is still fatal.
        assert!(decode_message(b'Q', Bytes::from_static(b"SELECT 1")).is_err());
    }

    #[test]
    fn short_or_long_bodies_are_errors() {
        // Parse with an empty body: pgwire's decoder would panic here.
        assert!(decode_message(b'P', Bytes::new()).is_err());
        assert!(decode_message(b'B', Bytes::from_static(b"\0\0\0\x01")).is_err());
        assert!(decode_message(b'E', Bytes::from_static(b"\0\0\0")).is_err());
        assert!(decode_message(b'S', Bytes::from_static(b"x")).is_err());
        assert!(decode_message(b'Q', Bytes::from_static(b"SELECT 1")).is_err());
        assert!(decode_message(b'D', Bytes::from_static(b"Zx\0")).is_err());
        assert!(decode_message(b'!', Bytes::new()).is_err());
        // A parameter length beyond the body.
        assert!(decode_message(
            b'B',
            Bytes::from_static(b"\0\0\0\0\0\x01\x7f\xff\xff\xff\0\0")
        )
        .is_err());
    }

    #[test]
    fn startup_packets() {
        let mut body = 196_608u32.to_be_bytes().to_vec();
        body.extend_from_slice(b"user\0alice\0database\0db\0\0");
        assert_eq!(
            decode_startup(&body).unwrap(),
            StartupPacket::Startup {
                major: 3,
                minor: 0,
                params: vec![
                    ("user".into(), "alice".into()),
                    ("database".into(), "db".into())
                ]
            }
        );
        assert_eq!(
            decode_startup(&SSL_REQUEST_CODE.to_be_bytes()).unwrap(),
            StartupPacket::SslRequest
        );
        let mut cancel = CANCEL_REQUEST_CODE.to_be_bytes().to_vec();
        cancel.extend_from_slice(&7i32.to_be_bytes());
        cancel.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(
            decode_startup(&cancel).unwrap(),
            StartupPacket::Cancel {
                pid: 7,
                secret: vec![1, 2, 3, 4]
            }
        );
        // Unterminated parameter list.
        let mut bad = 196_608u32.to_be_bytes().to_vec();
        bad.extend_from_slice(b"user\0alice");
        assert!(decode_startup(&bad).is_err());
    }

    /// A small deterministic generator, so the test needs no rand crate.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn random_bodies_never_panic() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let kinds = b"QPBDECSHXdcfp!Z\0";
        for _ in 0..20_000 {
            let len = (rng.next() % 64) as usize;
            let body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let kind = kinds[(rng.next() % kinds.len() as u64) as usize];
            let _ = decode_message(kind, Bytes::from(body.clone()));
            let _ = decode_startup(&body);
        }
    }

    #[tokio::test]
    async fn framing_rejects_bad_lengths() {
        let mut input: &[u8] = b"Q\0\0\0\x02";
        assert!(matches!(
            read_message(&mut input).await,
            Err(ReadError::Protocol(_))
        ));
        let mut input: &[u8] = b"S\x7f\xff\xff\xff";
        assert!(matches!(
            read_message(&mut input).await,
            Err(ReadError::Protocol(_))
        ));
        let mut input: &[u8] = b"Q\0\0\0\x09SEL";
        assert!(matches!(
            read_message(&mut input).await,
            Err(ReadError::Io(_))
        ));
        let mut input: &[u8] = b"";
        assert!(matches!(read_message(&mut input).await, Ok(None)));
        let mut input: &[u8] = b"Q\0\0\0\x0dSELECT 1\0S\0\0\0\x04";
        let (kind, body) = read_message(&mut input).await.unwrap().unwrap();
        assert_eq!(
            decode_message(kind, body).unwrap(),
            FrontendMessage::Query("SELECT 1".into())
        );
        let (kind, body) = read_message(&mut input).await.unwrap().unwrap();
        assert_eq!(decode_message(kind, body).unwrap(), FrontendMessage::Sync);
        let mut input: &[u8] = b"\0\0\0\x03";
        assert!(matches!(
            read_startup(&mut input).await,
            Err(ReadError::Protocol(_))
        ));
    }
}
