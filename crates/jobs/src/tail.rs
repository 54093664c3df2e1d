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
    ///
    /// The whole buffer is masked before it is cut, so a `password=value` that the cut
    /// would split is masked while its key is still there (R3-14); and when the kept end
    /// does not start at the output's start, its first partial line (or, in output without
    /// lines, its first partial `key: value`) is dropped, since no pattern could mask what
    /// the buffer itself cut.
    pub(crate) fn text(&self) -> String {
        let whole = String::from_utf8_lossy(&self.buf).into_owned();
        let masked = dockhand_policy::Redactor::default().redact(&whole);
        let cut_raw = self.buf.len() > self.cap || self.total > self.buf.len() as u64;
        let mut start = masked.len().saturating_sub(self.cap);
        while !masked.is_char_boundary(start) {
            start += 1;
        }
        let mut kept = &masked[start..];
        if cut_raw {
            kept = drop_partial_start(kept);
        }
        let cut = self.total.saturating_sub(kept.len() as u64);
        if cut > 0 { format!("[{cut} earlier bytes not kept]\n{kept}") } else { kept.to_owned() }
    }
}

/// `text` without its first line, which a cut made partial; without lines, without its
/// first two words (more while a dropped word ends like a key, `word:`), since the cut
/// may have taken the key of `--password value` or `password: value`; one word is kept
/// unless it could be the rest of a `key=value` or `key:value`.
fn drop_partial_start(text: &str) -> &str {
    if let Some(newline) = text.find('\n') {
        return &text[newline + 1..];
    }
    if !text.contains(char::is_whitespace) {
        return if text.contains(['=', ':']) { "" } else { text };
    }
    let mut rest = text.trim_start();
    let mut dropped = 0;
    loop {
        let Some(space) = rest.find(char::is_whitespace) else { return "" };
        let word = &rest[..space];
        rest = rest[space..].trim_start();
        dropped += 1;
        if dropped >= 2 && !(word.ends_with(':') || word.ends_with('=')) {
            return rest;
        }
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

    /// R3-14: a cut that splits `password=value` must not leave `word=value` behind.
    #[test]
    fn a_cut_never_unmasks_a_secret() {
        let mut t = Tail::new(4096);
        t.push(&[b'x'; 10]);
        t.push(b"password=hunter2-tail-secret");
        t.push(&[b'y'; 4072]);
        assert!(!t.text().contains("hunter2-tail-secret"), "{}", t.text());
        // Cut by the buffer itself, in lines and without.
        for line in [
            "password: hunter2-tail-secret\n",
            "password: hunter2-tail-secret ",
            "--password hunter2-tail-secret ",
        ] {
            // Every cap cuts the buffer at another offset of the line.
            for cap in 16..96 {
                let mut t = Tail::new(cap);
                for _ in 0..40 {
                    t.push(line.as_bytes());
                    let text = t.text();
                    assert!(!text.contains("r2-tail-secret"), "cap {cap}: {text:?}");
                }
            }
        }
    }
}
