//! The server's log: JSON lines on stderr, each passed through the [`Redactor`] (known
//! secrets and secret-looking patterns) before it is written.

use std::io::Write;
use std::sync::Arc;

use dockhand_policy::Redactor;
use tracing_subscriber::fmt::MakeWriter;

/// Makes a writer per log line that redacts the line when it is done.
#[derive(Debug, Clone)]
pub struct RedactingWriter {
    redactor: Arc<Redactor>,
}

impl RedactingWriter {
    /// With these secrets.
    pub fn new(redactor: Redactor) -> Self {
        Self { redactor: Arc::new(redactor) }
    }
}

/// One line being written.
#[derive(Debug)]
pub struct Line {
    redactor: Arc<Redactor>,
    buf: Vec<u8>,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        let clean = self.redactor.redact(&text);
        let _ = std::io::stderr().lock().write_all(clean.as_bytes());
    }
}

impl<'a> MakeWriter<'a> for RedactingWriter {
    type Writer = Line;

    fn make_writer(&'a self) -> Self::Writer {
        Line { redactor: Arc::clone(&self.redactor), buf: Vec::with_capacity(256) }
    }
}
