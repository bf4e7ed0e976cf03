//! A request body too large to hold whole, written once into a temporary
//! file and sent from it at each attempt of
//! [`HttpClient::send_streamed`](super::http::HttpClient::send_streamed).

use bytes::Bytes;
use futures::SinkExt;

use super::http::BodySender;
use crate::error::{Error, Result};

/// A request body written once, a piece at a time, into an anonymous
/// temporary file (removed by the OS however the run ends), then sent from
/// it at each attempt ([`HttpClient::send_streamed`](super::http::HttpClient::send_streamed)). A 10,000-job body is
/// tens of megabytes: memory never holds it whole, its jobs are read and
/// encoded once, and every attempt sends exactly the bytes measured.
#[derive(Debug)]
pub struct BodySpool {
    out: std::io::BufWriter<std::fs::File>,
    len: u64,
}

/// A [`BodySpool`] written to its end: what is sent.
#[derive(Debug)]
pub struct SpooledBody {
    file: std::fs::File,
    len: u64,
}

fn spool_err(e: std::io::Error) -> Error {
    Error::io(
        "keep a request body in a temporary file in",
        std::env::temp_dir(),
        e,
    )
}

impl BodySpool {
    /// An empty body.
    pub fn new() -> Result<Self> {
        let file = tempfile::tempfile().map_err(spool_err)?;
        Ok(BodySpool {
            out: std::io::BufWriter::with_capacity(1 << 16, file),
            len: 0,
        })
    }

    /// Appends bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        self.out.write_all(bytes).map_err(spool_err)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// The body, written to its end.
    pub fn finish(self) -> Result<SpooledBody> {
        let len = self.len;
        let file = self
            .out
            .into_inner()
            .map_err(|e| spool_err(e.into_error()))?;
        Ok(SpooledBody { file, len })
    }
}

impl SpooledBody {
    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The body's bytes from the start, in pieces of `piece` bytes. One
    /// reading at a time (the attempts of a call come one after another).
    fn pieces(&self, piece: usize) -> Result<impl Iterator<Item = Result<Vec<u8>>> + '_> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = &self.file;
        file.seek(SeekFrom::Start(0)).map_err(spool_err)?;
        let mut left = self.len;
        Ok(std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            let n = left.min(piece as u64) as usize;
            let mut buf = vec![0u8; n];
            if let Err(e) = file.read_exact(&mut buf) {
                left = 0;
                return Some(Err(spool_err(e)));
            }
            left -= n as u64;
            Some(Ok(buf))
        }))
    }

    /// Sends the body into an attempt's stream. A piece the stream no
    /// longer takes (the attempt ended) stops it quietly.
    pub async fn send(&self, mut tx: BodySender, piece: usize) -> Result<()> {
        for chunk in self.pieces(piece)? {
            if tx.send(Ok(Bytes::from(chunk?))).await.is_err() {
                break;
            }
        }
        Ok(())
    }

    /// Copies the body into `w` (a debug file).
    pub fn copy_to(&self, w: &mut (impl std::io::Write + ?Sized)) -> Result<()> {
        for chunk in self.pieces(1 << 20)? {
            w.write_all(&chunk?).map_err(spool_err)?;
        }
        Ok(())
    }
}
