//! The bounded end of a command's output: however much a command prints, a job keeps at
//! most a few KiB of it in memory and in its record.

/// How much of a command's output a step keeps: its last 4 KiB.
pub const OUTPUT_TAIL: usize = 4096;

/// The last `cap` bytes of everything pushed, in at most `2 × cap` plus one chunk of memory.
#[derive(Debug, Clone)]
pub(crate) struct Tail {
    buf: Vec<u8>,
    cap: usize,
    total: u64,
}

impl Tail {
    /// Keeps the last `cap` bytes.
    pub(crate) fn new(cap: usize) -> Self {
        Self { buf: Vec::new(), cap, total: 0 }
    }

    /// Appends output.
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.total = self.total.saturating_add(data.len() as u64);
        if data.len() >= self.cap {
            self.buf.clear();
            self.buf.extend_from_slice(&data[data.len() - self.cap..]);
            return;
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() > 2 * self.cap {
            let cut = self.buf.len() - self.cap;
            self.buf.drain(..cut);
        }
    }

    /// The kept end as text (invalid UTF-8 replaced, secret-looking values masked: a
    /// tail goes into events, answers and notifications, not only the store), with a note
    /// of what was cut.
    pub(crate) fn text(&self) -> String {
        let start = self.buf.len().saturating_sub(self.cap);
        let kept = String::from_utf8_lossy(&self.buf[start..]).into_owned();
        let kept = dockhand_policy::Redactor::default().redact(&kept);
        let cut = self.total.saturating_sub((self.buf.len() - start) as u64);
        if cut > 0 { format!("[{cut} earlier bytes not kept]\n{kept}") } else { kept }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_end_within_bounds() {
        let mut t = Tail::new(8);
        t.push(b"hello ");
        assert_eq!(t.text(), "hello ");
        for _ in 0..1000 {
            t.push(b"0123456789");
            assert!(t.buf.len() <= 16 + 10);
        }
        t.push(b"end");
        assert!(t.text().ends_with("56789end"), "{}", t.text());
        assert!(t.text().starts_with("[10001 earlier bytes not kept]"), "{}", t.text());
        t.push(&[b'x'; 100]);
        assert!(t.text().ends_with("xxxxxxxx"));
        assert_eq!(t.total, 6 + 10_000 + 3 + 100);
    }

    #[test]
    fn a_secret_in_the_output_is_masked() {
        let mut t = Tail::new(4096);
        t.push(b"login with password=hunter2-tail-secret ok\n");
        assert!(!t.text().contains("hunter2-tail-secret"), "{}", t.text());
        assert!(t.text().contains("login with"), "{}", t.text());
    }
}
