//! Cutting a streamed response body into lines, holding at most one
//! unfinished line between chunks — how both providers read result files
//! without ever having a whole file in memory.

/// Cuts a byte stream into lines (`\n` or `\r\n`), holding at most the one
/// unfinished line between chunks. Blank lines are skipped.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// A splitter with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one chunk; calls `each` for every line it completes.
    pub fn push<E>(
        &mut self,
        chunk: &[u8],
        mut each: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                emit(&rest[..pos], &mut each)?;
            } else {
                self.partial.extend_from_slice(&rest[..pos]);
                let line = std::mem::take(&mut self.partial);
                emit(&line, &mut each)?;
            }
            rest = &rest[pos + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    /// Ends the stream; a last line without a newline is still a line.
    pub fn finish<E>(self, mut each: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        emit(&self.partial, &mut each)
    }
}

fn emit<E>(line: &[u8], each: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    each(line)
}
