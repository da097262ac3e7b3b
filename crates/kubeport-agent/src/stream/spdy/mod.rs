//! A compact SPDY/3.1 framing layer, enough for Kubernetes' remote-command streams.
//!
//! kubectl (through client-go and `moby/spdystream`) upgrades an HTTP/1.1 connection to
//! `SPDY/3.1`, then opens one stream per channel with SYN_STREAM (header `streamtype`),
//! waits for each SYN_REPLY, and moves bytes in DATA frames; FLAG_FIN half-closes a stream.
//! Header blocks are zlib-compressed with the SPDY/3 dictionary, one context per direction.
//! spdystream neither sends nor honours WINDOW_UPDATE, so senders here never wait for window
//! credit; receivers still grant it back (WINDOW_UPDATE) so that a peer that does enforce
//! SPDY/3.1 flow control is never stalled.
//!
//! [`FrameReader`] and [`FrameWriter`] work on either half of an async byte stream and are
//! used both by the agent's server and by test clients.

mod dictionary;
pub mod frame;

pub use dictionary::dictionary;
pub use frame::{header, Frame, HeaderDeflater, HeaderInflater, Headers, FLAG_FIN};

use bytes::{Buf, BytesMut};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The `Upgrade` token of SPDY/3.1 connections.
pub const UPGRADE_TOKEN: &str = "SPDY/3.1";

/// Reads frames from the receiving half of a SPDY connection.
pub struct FrameReader<R> {
    io: R,
    buf: BytesMut,
    inflater: HeaderInflater,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(io: R) -> Self {
        FrameReader {
            io,
            buf: BytesMut::with_capacity(16 * 1024),
            inflater: HeaderInflater::new(),
        }
    }

    /// The next frame; `Ok(None)` when the peer closed the connection between frames.
    pub async fn read_frame(&mut self) -> io::Result<Option<Frame>> {
        loop {
            if let Some((frame, used)) = frame::decode(&self.buf, &mut self.inflater)? {
                self.buf.advance(used);
                return Ok(Some(frame));
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(16 * 1024);
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "SPDY connection closed inside a frame",
                    ))
                };
            }
        }
    }
}

/// Writes frames to the sending half of a SPDY connection.
pub struct FrameWriter<W> {
    io: W,
    deflater: HeaderDeflater,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(io: W) -> Self {
        FrameWriter {
            io,
            deflater: HeaderDeflater::new(),
        }
    }

    /// Encodes and writes one frame without flushing.
    pub async fn write_frame(&mut self, frame: &Frame) -> io::Result<()> {
        let wire = frame::encode(frame, &mut self.deflater)?;
        self.io.write_all(&wire).await
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        self.io.flush().await
    }

    /// Ends the sending direction of the underlying connection.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.io.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_cross_a_byte_stream_in_small_pieces() {
        let (a, b) = tokio::io::duplex(7);
        let mut w = FrameWriter::new(a);
        let mut r = FrameReader::new(b);
        let sent = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: vec![("streamtype".into(), "stdout".into())],
            },
            Frame::data(1, vec![7u8; 70_000], false),
            Frame::data(1, Vec::new(), true),
        ];
        let expected = sent.clone();
        let writer = tokio::spawn(async move {
            for f in &sent {
                w.write_frame(f).await.unwrap();
            }
            w.flush().await.unwrap();
            w.shutdown().await.unwrap();
        });
        for f in expected {
            assert_eq!(r.read_frame().await.unwrap(), Some(f));
        }
        assert_eq!(r.read_frame().await.unwrap(), None);
        writer.await.unwrap();
    }
}
