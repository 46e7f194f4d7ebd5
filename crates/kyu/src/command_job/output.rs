//! A command's output as it is recorded: stdout and stderr decoded as one
//! UTF-8 text each, in order, of which the last bytes are kept.
//!
//! Decoding happens here, once, as bytes arrive: a character split across
//! reads waits for its last byte, and an undecodable sequence becomes one
//! U+FFFD (and so does a NUL, which no store keeps). So the recorded text
//! only ever grows at its end, and its byte count
//! ([`AttemptLogs::stdout_bytes`]) is an offset into that one text:
//! a reader that has printed the first N bytes (`kyu jobs logs --follow`)
//! prints exactly what follows, whole characters only.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt};

use kyu_core::AttemptLogs;

use super::parse_progress_line;
use crate::JobContext;

/// One stream's recorded text.
#[derive(Default)]
pub(super) struct Text {
    /// The kept tail, at most the log limit in bytes, cut at a character.
    kept: String,
    /// Bytes of text recorded so far, kept or not.
    total: u64,
    /// The start of a character whose last bytes have not arrived yet.
    pending: Vec<u8>,
}

impl Text {
    /// Records `bytes`, keeping the last `limit` bytes of text.
    pub(super) fn push(&mut self, bytes: &[u8], limit: usize) {
        let mut all = std::mem::take(&mut self.pending);
        all.extend_from_slice(bytes);
        let mut decoded = String::new();
        let mut rest = all.as_slice();
        while !rest.is_empty() {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    decoded.push_str(s);
                    rest = &[];
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    decoded.push_str(&String::from_utf8_lossy(good));
                    match e.error_len() {
                        Some(n) => {
                            decoded.push(char::REPLACEMENT_CHARACTER);
                            rest = &bad[n..];
                        }
                        // An incomplete character at the end: wait for the rest.
                        None => {
                            self.pending = bad.to_vec();
                            rest = &[];
                        }
                    }
                }
            }
        }
        // Stores record NUL as U+FFFD (AttemptLogs::stored_text): make it one
        // here, so the byte count stays an offset into the text as stored.
        self.append(&AttemptLogs::stored_text(&decoded), limit);
    }

    /// The stream ended: an incomplete last character is recorded as U+FFFD.
    pub(super) fn finish(&mut self, limit: usize) {
        if !self.pending.is_empty() {
            self.pending.clear();
            self.append("\u{FFFD}", limit);
        }
    }

    fn append(&mut self, text: &str, limit: usize) {
        self.kept.push_str(text);
        self.total += text.len() as u64;
        if self.kept.len() > limit {
            let mut cut = self.kept.len() - limit;
            while !self.kept.is_char_boundary(cut) {
                cut += 1;
            }
            self.kept.drain(..cut);
        }
    }

    /// The kept text.
    pub(super) fn kept(&self) -> &str {
        &self.kept
    }
}

/// Both streams of one attempt, as the readers fill them.
#[derive(Default)]
pub(super) struct Capture {
    pub(super) stdout: Text,
    pub(super) stderr: Text,
    pub(super) last_json_line: Option<String>,
    pub(super) changed: bool,
}

impl Capture {
    /// The output so far, as stored with the attempt.
    pub(super) fn logs(&self, attempt: u32) -> AttemptLogs {
        AttemptLogs {
            attempt,
            stdout: self.stdout.kept().to_string(),
            stderr: self.stderr.kept().to_string(),
            stdout_bytes: self.stdout.total,
            stderr_bytes: self.stderr.total,
        }
    }
}

/// Reads one stream to its end into the capture. For stdout (`progress` is
/// the job context), whole lines are also checked for progress and JSON.
pub(super) async fn read_stream(
    mut stream: impl AsyncRead + Unpin,
    capture: Arc<Mutex<Capture>>,
    limit: usize,
    progress: Option<JobContext>,
) {
    let mut buf = vec![0u8; 8192];
    let mut line = Vec::new();
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let mut lines_done = Vec::new();
        if progress.is_some() {
            for &b in chunk {
                if b == b'\n' {
                    lines_done.push(String::from_utf8_lossy(&line).into_owned());
                    line.clear();
                } else if line.len() < 64 * 1024 {
                    line.push(b);
                }
            }
        }
        {
            let mut c = capture.lock().expect("capture lock");
            c.changed = true;
            if progress.is_some() {
                c.stdout.push(chunk, limit);
                for l in &lines_done {
                    if serde_json::from_str::<serde::de::IgnoredAny>(l).is_ok()
                        && !l.trim().is_empty()
                    {
                        c.last_json_line = Some(l.clone());
                    }
                }
            } else {
                c.stderr.push(chunk, limit);
            }
        }
        if let Some(ctx) = &progress {
            for l in &lines_done {
                if let Some((pct, msg)) = parse_progress_line(l) {
                    ctx.set_progress(pct, msg).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Text;
    use kyu_core::AttemptLogs;

    fn fed(chunks: &[&[u8]], limit: usize) -> Text {
        let mut t = Text::default();
        for c in chunks {
            t.push(c, limit);
        }
        t
    }

    #[test]
    fn tails_keep_the_last_bytes() {
        let t = fed(&[b"hello ", b"world"], 8);
        assert_eq!((t.kept(), t.total), ("lo world", 11));
    }

    #[test]
    fn a_character_split_across_reads_is_recorded_whole_once_complete() {
        let bytes = "日本".as_bytes();
        let mut t = Text::default();
        t.push(&bytes[..1], 100);
        assert_eq!(
            (t.kept(), t.total),
            ("", 0),
            "nothing of a partial character"
        );
        t.push(&bytes[1..4], 100);
        assert_eq!((t.kept(), t.total), ("日", 3));
        t.push(&bytes[4..], 100);
        assert_eq!((t.kept(), t.total), ("日本", 6));
    }

    #[test]
    fn undecodable_bytes_become_one_replacement_each_and_offsets_stay_exact() {
        let t = fed(&[b"ab\xff", b"cd\xe6\x97", b"\n"], 100);
        assert_eq!(t.kept(), "ab\u{FFFD}cd\u{FFFD}\n");
        assert_eq!(t.total as usize, t.kept().len());
        let mut t = fed(&[b"x\xe6"], 100);
        t.finish(100);
        assert_eq!(t.kept(), "x\u{FFFD}", "an unfinished character at the end");
    }

    /// Stores record NUL as U+FFFD (`AttemptLogs::stored_text`); counted as
    /// the 1 byte it was, every offset after it would point 2 bytes short
    /// and `kyu jobs logs --follow` would skip output.
    #[test]
    fn nul_is_recorded_as_a_replacement_and_offsets_stay_exact() {
        let t = fed(&[b"a\0b", b"\0"], 100);
        assert_eq!(t.kept(), "a\u{FFFD}b\u{FFFD}");
        assert_eq!(t.total as usize, t.kept().len());
        assert_eq!(
            t.kept(),
            AttemptLogs::stored_text(t.kept()),
            "stored as kept"
        );
    }

    #[test]
    fn the_kept_tail_is_cut_at_a_character() {
        let t = fed(&["aé日".as_bytes()], 4);
        assert_eq!(t.kept(), "日", "never half a character");
        assert_eq!(t.total, 6);
    }
}
