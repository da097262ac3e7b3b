//! SPDY/3 frames: the in-memory form, encoding and decoding, and the connection-wide
//! zlib contexts that compress header blocks.
//!
//! Layout (draft 3): a control frame starts with the control bit, a 15-bit version and a
//! 16-bit type, then 8 bits of flags and a 24-bit payload length; a data frame starts with a
//! 31-bit stream id, then flags and length. Header blocks are a u32 count of pairs, each name
//! and value a u32 length and bytes (several values of one name are joined by NUL), and are
//! compressed by one zlib stream per direction for the whole session, each block ended by a
//! sync flush.

use super::dictionary::dictionary;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::io;

/// The SPDY version these frames carry.
pub const VERSION: u16 = 3;
/// FLAG_FIN on SYN_STREAM, SYN_REPLY, HEADERS and DATA.
pub const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL on SYN_STREAM.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// Largest payload a frame's 24-bit length can describe.
pub const MAX_PAYLOAD: usize = (1 << 24) - 1;
/// Largest control frame this implementation accepts (header blocks of kubectl's streams
/// are a few dozen bytes).
const MAX_CONTROL_PAYLOAD: usize = 1 << 20;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes.
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INVALID_STREAM: u32 = 2;
    pub const REFUSED_STREAM: u32 = 3;
    pub const CANCEL: u32 = 5;
    pub const INTERNAL_ERROR: u32 = 6;
    pub const FLOW_CONTROL_ERROR: u32 = 7;
}

/// SETTINGS ids used here.
pub mod settings {
    pub const MAX_CONCURRENT_STREAMS: u32 = 4;
    pub const INITIAL_WINDOW_SIZE: u32 = 7;
}

/// Header pairs of a SYN_STREAM, SYN_REPLY or HEADERS frame: lowercase names, in order;
/// a name sent with several values appears once per value.
pub type Headers = Vec<(String, String)>;

/// One SPDY/3 frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        /// (flags, id, value)
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Vec<u8>,
    },
    /// A control frame of a type SPDY/3 does not define; the spec says to ignore it.
    Unknown {
        frame_type: u16,
    },
}

impl Frame {
    /// A DATA frame.
    pub fn data(stream_id: u32, data: impl Into<Vec<u8>>, fin: bool) -> Frame {
        Frame::Data {
            stream_id,
            flags: if fin { FLAG_FIN } else { 0 },
            data: data.into(),
        }
    }

    /// True when the frame carries FLAG_FIN (ends the sender's half of its stream).
    pub fn is_fin(&self) -> bool {
        match self {
            Frame::SynStream { flags, .. }
            | Frame::SynReply { flags, .. }
            | Frame::Headers { flags, .. }
            | Frame::Data { flags, .. } => flags & FLAG_FIN != 0,
            _ => false,
        }
    }
}

/// The first value of `name` among `headers`.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// The sending side's header compressor (one per connection).
pub struct HeaderDeflater {
    z: Compress,
}

impl Default for HeaderDeflater {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDeflater {
    pub fn new() -> Self {
        let mut z = Compress::new(Compression::best(), true);
        z.set_dictionary(dictionary())
            .expect("a fresh zlib stream accepts a dictionary");
        HeaderDeflater { z }
    }

    /// Serialises and compresses one header block (ends with a sync flush so the peer can
    /// decode it without the following blocks).
    pub fn compress(&mut self, headers: &Headers) -> io::Result<Vec<u8>> {
        let raw = encode_header_block(headers)?;
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(raw.len() + 64);
            }
            let before_in = self.z.total_in();
            let before_out = self.z.total_out();
            let status = self
                .z
                .compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| invalid(format!("header compression failed: {e}")))?;
            consumed += (self.z.total_in() - before_in) as usize;
            let produced = self.z.total_out() - before_out;
            // Done once all input is in and the flush fitted in the space we offered.
            if consumed == raw.len() && out.len() < out.capacity() {
                break;
            }
            if status == Status::BufError && produced == 0 {
                out.reserve(256);
            }
        }
        Ok(out)
    }
}

/// The receiving side's header decompressor (one per connection).
pub struct HeaderInflater {
    z: Decompress,
}

impl Default for HeaderInflater {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderInflater {
    pub fn new() -> Self {
        HeaderInflater {
            z: Decompress::new(true),
        }
    }

    /// Decompresses and parses one header block.
    pub fn decompress(&mut self, block: &[u8]) -> io::Result<Headers> {
        let mut out: Vec<u8> = Vec::with_capacity(block.len() * 4 + 256);
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 256 {
                out.reserve(out.capacity().max(1024));
            }
            let before_in = self.z.total_in();
            let res = self
                .z
                .decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.z.total_in() - before_in) as usize;
            match res {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {
                    if consumed == block.len() && out.len() < out.capacity() {
                        break;
                    }
                }
                Err(e) => match e.needs_dictionary() {
                    Some(_) => {
                        self.z.set_dictionary(dictionary()).map_err(|e| {
                            invalid(format!("the peer's header dictionary is not SPDY/3's: {e}"))
                        })?;
                    }
                    None => return Err(invalid(format!("header decompression failed: {e}"))),
                },
            }
        }
        decode_header_block(&out)
    }
}

fn encode_header_block(headers: &Headers) -> io::Result<Vec<u8>> {
    // Values of a repeated name travel NUL-joined under one name.
    let mut merged: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push('\0');
                v.push_str(value);
            }
            None => merged.push((name, value.clone())),
        }
    }
    let mut raw = Vec::new();
    raw.extend_from_slice(&(merged.len() as u32).to_be_bytes());
    for (name, value) in &merged {
        if name.is_empty() {
            return Err(invalid("empty header name"));
        }
        raw.extend_from_slice(&(name.len() as u32).to_be_bytes());
        raw.extend_from_slice(name.as_bytes());
        raw.extend_from_slice(&(value.len() as u32).to_be_bytes());
        raw.extend_from_slice(value.as_bytes());
    }
    Ok(raw)
}

fn decode_header_block(raw: &[u8]) -> io::Result<Headers> {
    let mut r = Cursor { buf: raw, pos: 0 };
    let count = r.u32()? as usize;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let n = r.u32()? as usize;
        let name = String::from_utf8(r.bytes(n)?.to_vec())
            .map_err(|_| invalid("header name is not UTF-8"))?;
        let n = r.u32()? as usize;
        let value = String::from_utf8_lossy(r.bytes(n)?).into_owned();
        let name = name.to_ascii_lowercase();
        for v in value.split('\0') {
            headers.push((name.clone(), v.to_string()));
        }
    }
    Ok(headers)
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(invalid("truncated SPDY frame"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u32(&mut self) -> io::Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.bytes(1)?[0])
    }
    fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }
}

fn control_header(out: &mut Vec<u8>, frame_type: u16, flags: u8, len: usize) -> io::Result<()> {
    if len > MAX_PAYLOAD {
        return Err(invalid("SPDY frame payload too large"));
    }
    out.extend_from_slice(&(0x8000u16 | VERSION).to_be_bytes());
    out.extend_from_slice(&frame_type.to_be_bytes());
    out.extend_from_slice(&(((flags as u32) << 24) | len as u32).to_be_bytes());
    Ok(())
}

/// Encodes a frame, compressing its header block (if any) with `deflater`.
pub fn encode(frame: &Frame, deflater: &mut HeaderDeflater) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match frame {
        Frame::SynStream {
            stream_id,
            associated_to,
            priority,
            flags,
            headers,
        } => {
            let block = deflater.compress(headers)?;
            control_header(&mut out, TYPE_SYN_STREAM, *flags, 10 + block.len())?;
            out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
            out.extend_from_slice(&(associated_to & 0x7fff_ffff).to_be_bytes());
            out.push((priority & 0x07) << 5);
            out.push(0); // credential slot
            out.extend_from_slice(&block);
        }
        Frame::SynReply {
            stream_id,
            flags,
            headers,
        } => {
            let block = deflater.compress(headers)?;
            control_header(&mut out, TYPE_SYN_REPLY, *flags, 4 + block.len())?;
            out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
            out.extend_from_slice(&block);
        }
        Frame::Headers {
            stream_id,
            flags,
            headers,
        } => {
            let block = deflater.compress(headers)?;
            control_header(&mut out, TYPE_HEADERS, *flags, 4 + block.len())?;
            out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
            out.extend_from_slice(&block);
        }
        Frame::RstStream { stream_id, status } => {
            control_header(&mut out, TYPE_RST_STREAM, 0, 8)?;
            out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
            out.extend_from_slice(&status.to_be_bytes());
        }
        Frame::Settings { flags, entries } => {
            control_header(&mut out, TYPE_SETTINGS, *flags, 4 + 8 * entries.len())?;
            out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
            for (f, id, value) in entries {
                out.extend_from_slice(&(((*f as u32) << 24) | (id & 0x00ff_ffff)).to_be_bytes());
                out.extend_from_slice(&value.to_be_bytes());
            }
        }
        Frame::Ping { id } => {
            control_header(&mut out, TYPE_PING, 0, 4)?;
            out.extend_from_slice(&id.to_be_bytes());
        }
        Frame::GoAway {
            last_good_stream_id,
            status,
        } => {
            control_header(&mut out, TYPE_GOAWAY, 0, 8)?;
            out.extend_from_slice(&(last_good_stream_id & 0x7fff_ffff).to_be_bytes());
            out.extend_from_slice(&status.to_be_bytes());
        }
        Frame::WindowUpdate { stream_id, delta } => {
            control_header(&mut out, TYPE_WINDOW_UPDATE, 0, 8)?;
            out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
            out.extend_from_slice(&(delta & 0x7fff_ffff).to_be_bytes());
        }
        Frame::Data {
            stream_id,
            flags,
            data,
        } => {
            if data.len() > MAX_PAYLOAD {
                return Err(invalid("SPDY data frame too large"));
            }
            out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
            out.extend_from_slice(&(((*flags as u32) << 24) | data.len() as u32).to_be_bytes());
            out.extend_from_slice(data);
        }
        Frame::Unknown { .. } => return Err(invalid("cannot encode an unknown frame")),
    }
    Ok(out)
}

/// Decodes the first frame of `buf`. Returns `Ok(None)` when `buf` holds only part of a
/// frame, else the frame and how many bytes it took.
pub fn decode(buf: &[u8], inflater: &mut HeaderInflater) -> io::Result<Option<(Frame, usize)>> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let word0 = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let word1 = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let flags = (word1 >> 24) as u8;
    let len = (word1 & 0x00ff_ffff) as usize;
    let is_control = word0 & 0x8000_0000 != 0;
    if is_control && len > MAX_CONTROL_PAYLOAD {
        return Err(invalid("SPDY control frame too large"));
    }
    if buf.len() < 8 + len {
        return Ok(None);
    }
    let payload = &buf[8..8 + len];
    let total = 8 + len;
    if !is_control {
        let stream_id = word0 & 0x7fff_ffff;
        if stream_id == 0 {
            return Err(invalid("SPDY data frame on stream 0"));
        }
        return Ok(Some((
            Frame::Data {
                stream_id,
                flags,
                data: payload.to_vec(),
            },
            total,
        )));
    }
    let version = ((word0 >> 16) & 0x7fff) as u16;
    if version != VERSION {
        return Err(invalid(format!("unsupported SPDY version {version}")));
    }
    let frame_type = (word0 & 0xffff) as u16;
    let mut r = Cursor {
        buf: payload,
        pos: 0,
    };
    let frame = match frame_type {
        TYPE_SYN_STREAM => {
            let stream_id = r.u32()? & 0x7fff_ffff;
            let associated_to = r.u32()? & 0x7fff_ffff;
            let priority = r.u8()? >> 5;
            let _slot = r.u8()?;
            let headers = inflater.decompress(r.rest())?;
            if stream_id == 0 {
                return Err(invalid("SYN_STREAM for stream 0"));
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                flags,
                headers,
            }
        }
        TYPE_SYN_REPLY => {
            let stream_id = r.u32()? & 0x7fff_ffff;
            let headers = inflater.decompress(r.rest())?;
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            }
        }
        TYPE_HEADERS => {
            let stream_id = r.u32()? & 0x7fff_ffff;
            let headers = inflater.decompress(r.rest())?;
            Frame::Headers {
                stream_id,
                flags,
                headers,
            }
        }
        TYPE_RST_STREAM => Frame::RstStream {
            stream_id: r.u32()? & 0x7fff_ffff,
            status: r.u32()?,
        },
        TYPE_SETTINGS => {
            let n = r.u32()? as usize;
            let mut entries = Vec::with_capacity(n.min(16));
            for _ in 0..n {
                let id = r.u32()?;
                let value = r.u32()?;
                entries.push(((id >> 24) as u8, id & 0x00ff_ffff, value));
            }
            Frame::Settings { flags, entries }
        }
        TYPE_PING => Frame::Ping { id: r.u32()? },
        TYPE_GOAWAY => Frame::GoAway {
            last_good_stream_id: r.u32()? & 0x7fff_ffff,
            // SPDY/2 GOAWAY had no status; accept its shorter payload.
            status: if len >= 8 { r.u32()? } else { 0 },
        },
        TYPE_WINDOW_UPDATE => Frame::WindowUpdate {
            stream_id: r.u32()? & 0x7fff_ffff,
            delta: r.u32()? & 0x7fff_ffff,
        },
        other => Frame::Unknown { frame_type: other },
    };
    Ok(Some((frame, total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn roundtrip(frames: &[Frame]) -> Vec<Frame> {
        let mut d = HeaderDeflater::new();
        let mut i = HeaderInflater::new();
        let mut wire = Vec::new();
        for f in frames {
            wire.extend(encode(f, &mut d).unwrap());
        }
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < wire.len() {
            let (f, n) = decode(&wire[pos..], &mut i).unwrap().expect("whole frame");
            out.push(f);
            pos += n;
        }
        out
    }

    #[test]
    fn every_frame_type_roundtrips_through_one_compression_context() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: h(&[("streamtype", "error")]),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: vec![],
            },
            Frame::SynStream {
                stream_id: 3,
                associated_to: 0,
                priority: 7,
                flags: FLAG_FIN | FLAG_UNIDIRECTIONAL,
                headers: h(&[("streamtype", "stdin"), ("x", "a"), ("x", "b")]),
            },
            Frame::Headers {
                stream_id: 3,
                flags: FLAG_FIN,
                headers: h(&[("k", "v")]),
            },
            Frame::RstStream {
                stream_id: 5,
                status: rst::CANCEL,
            },
            Frame::Settings {
                flags: 0,
                entries: vec![(0, settings::INITIAL_WINDOW_SIZE, 65536)],
            },
            Frame::Ping { id: 1 },
            Frame::GoAway {
                last_good_stream_id: 7,
                status: 0,
            },
            Frame::WindowUpdate {
                stream_id: 3,
                delta: 1000,
            },
            Frame::data(3, b"hello".to_vec(), false),
            Frame::data(3, Vec::new(), true),
        ];
        assert_eq!(roundtrip(&frames), frames);
    }

    #[test]
    fn data_frame_layout_matches_the_spec() {
        let mut d = HeaderDeflater::new();
        let wire = encode(&Frame::data(5, b"ab".to_vec(), true), &mut d).unwrap();
        assert_eq!(wire, vec![0, 0, 0, 5, 0x01, 0, 0, 2, b'a', b'b']);
    }

    #[test]
    fn control_frame_layout_matches_the_spec() {
        let mut d = HeaderDeflater::new();
        let wire = encode(&Frame::Ping { id: 9 }, &mut d).unwrap();
        assert_eq!(wire, vec![0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 9]);
        let wire = encode(
            &Frame::RstStream {
                stream_id: 3,
                status: rst::CANCEL,
            },
            &mut d,
        )
        .unwrap();
        assert_eq!(
            wire,
            vec![0x80, 0x03, 0x00, 0x03, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 5]
        );
    }

    #[test]
    fn first_header_block_names_the_spdy3_dictionary() {
        let mut d = HeaderDeflater::new();
        let block = d.compress(&h(&[("streamtype", "error")])).unwrap();
        // zlib header with FDICT set, then DICTID = Adler-32 of the SPDY/3 dictionary.
        assert_eq!(block[0] & 0x0f, 8);
        assert_ne!(block[1] & 0x20, 0);
        assert_eq!(&block[2..6], &0xe3c6_a7c2u32.to_be_bytes());
    }

    #[test]
    fn partial_input_asks_for_more() {
        let mut d = HeaderDeflater::new();
        let mut i = HeaderInflater::new();
        let wire = encode(&Frame::data(1, b"hello".to_vec(), false), &mut d).unwrap();
        for cut in 0..wire.len() {
            assert!(decode(&wire[..cut], &mut i).unwrap().is_none());
        }
        assert!(decode(&wire, &mut i).unwrap().is_some());
    }

    #[test]
    fn garbage_header_block_is_an_error() {
        let mut i = HeaderInflater::new();
        let mut wire = vec![0x80, 0x03, 0x00, 0x02, 0, 0, 0, 8, 0, 0, 0, 1];
        wire.extend_from_slice(b"\xff\xff\xff\xff");
        assert!(decode(&wire, &mut i).is_err());
    }

    #[test]
    fn unknown_control_frames_are_surfaced_not_fatal() {
        let mut i = HeaderInflater::new();
        let wire = vec![0x80, 0x03, 0x00, 0x0a, 0, 0, 0, 2, 1, 2];
        let (f, n) = decode(&wire, &mut i).unwrap().unwrap();
        assert_eq!(f, Frame::Unknown { frame_type: 10 });
        assert_eq!(n, 10);
    }
}
