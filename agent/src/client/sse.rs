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

/// A line longer than the parser's bound: the connection should be
/// dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

/// Accumulates bytes and yields complete events.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
    id: Option<String>,
}

/// The most the parser buffers without a line end: a stream that never
/// ends a line must not grow memory without bound.
const MAX_LINE: usize = 4 * 1024 * 1024;

impl SseParser {
    /// An empty parser.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Feeds bytes; returns the events they complete. `Err` when a line
    /// exceeds the bound (the connection should be dropped).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, LineTooLong> {
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
                "data" => self.data.push(value),
                "id" => self.id = Some(value),
                _ => {}
            }
        }
        if self.buffer.len() > MAX_LINE {
            return Err(LineTooLong);
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
}
