//! Server-sent events, decoded as the `openai` SDK's `SSEDecoder` decodes them: lines end at
//! `\n`, `\r` or `\r\n`; a blank line ends an event (if any field was seen); `:` starts a
//! comment; one space after the field's colon is dropped; `data` lines join with `\n`.
//!
//! Only an event's data is kept: the chat completions stream carries everything in it.

use memchr::memchr2;

/// Incremental decoder: feed it the body as it arrives, take the data of each finished event.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of a line not yet ended.
    line: Vec<u8>,
    /// The last byte fed was a `\r`: a `\n` right after it ends nothing more.
    after_cr: bool,
    data: Vec<u8>,
    data_lines: usize,
    /// Fields other than `data` seen in this event (the SDK dispatches an event with one).
    other_fields: bool,
    /// An `id` was seen at some point: the SDK keeps it, so every blank line dispatches.
    last_id_seen: bool,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `bytes`, calling `event` with the data of each event it completes.
    pub fn feed(&mut self, mut bytes: &[u8], mut event: impl FnMut(Vec<u8>)) {
        if self.after_cr && bytes.first() == Some(&b'\n') {
            bytes = &bytes[1..];
        }
        self.after_cr = false;
        while let Some(end) = memchr2(b'\n', b'\r', bytes) {
            let line_end = if self.line.is_empty() {
                self.line_done(&bytes[..end], &mut event);
                end
            } else {
                self.line.extend_from_slice(&bytes[..end]);
                let line = std::mem::take(&mut self.line);
                self.line_done(&line, &mut event);
                end
            };
            let mut next = line_end + 1;
            if bytes[line_end] == b'\r' {
                match bytes.get(next) {
                    Some(b'\n') => next += 1,
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
            bytes = &bytes[next..];
        }
        self.line.extend_from_slice(bytes);
    }

    fn line_done(&mut self, line: &[u8], event: &mut impl FnMut(Vec<u8>)) {
        if line.is_empty() {
            if self.data_lines > 0 || self.other_fields || self.last_id_seen {
                event(std::mem::take(&mut self.data));
            }
            self.data_lines = 0;
            self.other_fields = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.data_lines > 0 {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.data_lines += 1;
            }
            b"event" => self.other_fields = true,
            b"id" if !value.contains(&0) => self.last_id_seen = true,
            b"retry" if std::str::from_utf8(value).is_ok_and(|v| v.parse::<i64>().is_ok()) => {
                self.other_fields = true
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(parts: &[&[u8]]) -> Vec<String> {
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        for part in parts {
            decoder.feed(part, |data| events.push(String::from_utf8(data).unwrap()));
        }
        events
    }

    #[test]
    fn events_end_at_blank_lines_whatever_the_line_ends() {
        assert_eq!(
            decode(&[b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\n"]),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn split_anywhere_gives_the_same_events() {
        let body: &[u8] = b": comment\ndata: {\"x\": 1}\r\n\r\ndata:two\ndata: lines\n\n";
        let whole = decode(&[body]);
        assert_eq!(whole, ["{\"x\": 1}", "two\nlines"]);
        for cut in 0..body.len() {
            assert_eq!(decode(&[&body[..cut], &body[cut..]]), whole, "cut at {cut}");
        }
    }

    #[test]
    fn blank_lines_alone_are_no_events_until_an_id_is_seen() {
        assert_eq!(decode(&[b"\n\n: x\n\n"]), Vec::<String>::new());
        assert_eq!(decode(&[b"event: ping\n\n"]), [""]);
        assert_eq!(decode(&[b"id: 1\n\n\n"]), ["", ""]);
    }
}
