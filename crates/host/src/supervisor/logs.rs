//! The managed engine's output: the level each line is logged at, and the last lines kept
//! for startup-failure errors.

use std::collections::VecDeque;

/// The level for one line of output, given the configured default (`managed.loglevel`).
///
/// - dockerd's logrus lines carry their own: `level=error` is error, `level=warning` warn,
///   `level=info` info, `level=debug` debug;
/// - rootlesskit's `[rootlesskit:parent] error: ...` (and `:child`) is error;
/// - shell trace lines (`+ command`, from `set -x` in `dockerd-rootless.sh`) are debug;
/// - anything else takes the configured level.
pub fn classify(line: &str, default: &str) -> &'static str {
    let level_of = |name: &str| -> &'static str {
        match name {
            "panic" | "fatal" | "error" => "error",
            "warn" | "warning" => "warn",
            "info" => "info",
            "debug" => "debug",
            "trace" => "trace",
            _ => "info",
        }
    };
    if let Some(rest) = line.split_once("level=").map(|(_, r)| r) {
        let name = rest.split(|c: char| c.is_whitespace() || c == '"').next().unwrap_or("");
        return level_of(name);
    }
    let trimmed = line.trim_start();
    if trimmed.starts_with("[rootlesskit:")
        && trimmed.split_once(']').is_some_and(|(_, r)| r.trim_start().starts_with("error"))
    {
        return "error";
    }
    if trimmed.starts_with("+ ") || trimmed == "+" {
        return "debug";
    }
    level_of(default)
}

/// The last lines of output, for error messages.
#[derive(Debug, Clone)]
pub struct LastLines {
    cap: usize,
    lines: VecDeque<String>,
}

impl LastLines {
    /// Keeps at most `cap` lines.
    pub fn new(cap: usize) -> Self {
        Self { cap: cap.max(1), lines: VecDeque::new() }
    }

    /// Adds a line, dropping the oldest beyond the cap. Very long lines are cut.
    pub fn push(&mut self, line: &str) {
        const MAX_LINE: usize = 2048;
        let mut line = line.to_owned();
        if line.len() > MAX_LINE {
            let cut = (0..=MAX_LINE).rev().find(|&i| line.is_char_boundary(i)).unwrap_or(0);
            line.truncate(cut);
            line.push_str(" [...]");
        }
        if self.lines.len() == self.cap {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// The kept lines, oldest first, one per line.
    pub fn render(&self) -> String {
        self.lines.iter().map(String::as_str).collect::<Vec<_>>().join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_line() {
        let cases = [
            (r#"time="2026-11-22T04:38:41Z" level=error msg="failed to start""#, "error"),
            (r#"time="x" level=warning msg="Running in rootless mode""#, "warn"),
            (r#"time="x" level=info msg="API listen on /run/d.sock""#, "info"),
            (r#"time="x" level=debug msg="x""#, "debug"),
            (
                "[rootlesskit:parent] error: failed to lock /s/lock, another RootlessKit is running with the same state directory?",
                "error",
            ),
            ("[rootlesskit:child ] error: command [/usr/bin/dockerd] exited: exit status 1", "error"),
            ("+ exec rootlesskit --net=slirp4netns", "debug"),
            ("plain output", "warn"),
        ];
        for (line, level) in cases {
            assert_eq!(classify(line, "warn"), level, "{line}");
        }
        assert_eq!(classify("plain", "info"), "info");
    }

    #[test]
    fn keeps_the_last_lines() {
        let mut last = LastLines::new(3);
        for i in 0..5 {
            last.push(&format!("line {i}"));
        }
        assert_eq!(last.render(), "line 2\nline 3\nline 4");
        last.push(&"é".repeat(3000));
        assert!(last.render().ends_with(" [...]"));
    }
}
