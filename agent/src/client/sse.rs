//! A minimal server-sent-events parser: bytes in, events out. Fields other
//! than `event`, `data` and `id` are ignored, as the SSE format allows, and
//! comments (the control plane's keep-alives) are skipped.

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The event name; `message` when the server gave none.
    pub event: String,
    /// The data lines, joined by newlines.
    pub data: String,
    /// The last event id, if any.
    pub id: Option<String>,
}

/// A line, or an event's data, larger than the parser's bound: the
/// connection should be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a server-sent event outgrew its bound of {limit} bytes")]
pub struct TooLarge {
    /// The bound.
    pub limit: usize,
}

/// Accumulates bytes and yields complete events.
#[derive(Debug)]
pub struct SseParser {
    buffer: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
    /// Bytes of `data` so far, checked against `limit`.
    data_bytes: usize,
    id: Option<String>,
    limit: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::with_limit(MAX_EVENT_BYTES)
    }
}

/// The most the parser buffers without a line end, and the most data one
/// event may gather: a stream that never ends a line, or an event that
/// never ends, must not grow memory without bound.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

impl SseParser {
    /// An empty parser with the default bound, [`MAX_EVENT_BYTES`].
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// An empty parser that refuses a line, or an event's data, over
    /// `limit` bytes.
    pub fn with_limit(limit: usize) -> SseParser {
        SseParser {
            buffer: Vec::new(),
            event: None,
            data: Vec::new(),
            data_bytes: 0,
            id: None,
            limit,
        }
    }

    /// Feeds bytes; returns the events they complete. `Err` when a line or
    /// an event exceeds the bound (the connection should be dropped).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, TooLarge> {
        self.buffer.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buffer.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buffer.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                if !self.data.is_empty() {
                    out.push(SseEvent {
                        event: self.event.take().unwrap_or_else(|| "message".into()),
                        data: self.data.join("\n"),
                        id: self.id.clone(),
                    });
                }
                self.data.clear();
                self.data_bytes = 0;
                self.event = None;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f.to_owned(), v.strip_prefix(' ').unwrap_or(v).to_owned()),
                None => (line.clone(), String::new()),
            };
            match field.as_str() {
                "event" => self.event = Some(value),
                "data" => {
                    self.data_bytes += value.len() + 1;
                    if self.data_bytes > self.limit {
                        return Err(TooLarge { limit: self.limit });
                    }
                    self.data.push(value)
                }
                "id" => self.id = Some(value),
                _ => {}
            }
        }
        if self.buffer.len() > self.limit {
            return Err(TooLarge { limit: self.limit });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_comments_are_skipped() {
        let mut p = SseParser::new();
        assert!(p.feed(b": keep-alive\n\nevent: pol").unwrap().is_empty());
        let events = p
            .feed(b"icy\r\nid: 3\ndata: {\"a\":\ndata: 1}\n\n")
            .unwrap();
        assert_eq!(
            events,
            vec![SseEvent {
                event: "policy".into(),
                data: "{\"a\":\n1}".into(),
                id: Some("3".into()),
            }]
        );
    }

    #[test]
    fn a_line_or_an_event_over_the_bound_is_refused() {
        let mut p = SseParser::with_limit(16);
        assert_eq!(p.feed(b"data: 0123456789\n\n").unwrap().len(), 1);
        assert_eq!(
            p.feed(b"data: 0123456789abcdefgh"),
            Err(TooLarge { limit: 16 }),
            "a line that never ends"
        );
        let mut p = SseParser::with_limit(16);
        assert!(
            p.feed(b"data: 01234567\ndata: 01234567\n").is_err(),
            "an event that never ends"
        );
    }
}
