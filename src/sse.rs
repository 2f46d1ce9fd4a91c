//! Incremental Server-Sent Events parser (WHATWG `text/event-stream` rules).
//!
//! Sits between the upstream response body and the stream inspector: the
//! streaming body wrapper pushes each network chunk in and pulls complete
//! events out, forwards each event's exact bytes (`raw`) downstream and hands
//! its joined `data` to [`crate::inspect::StreamInspector`]. Nothing is
//! buffered beyond the one incomplete event at the tail.
//!
//! Rules followed: lines end with LF, CRLF or a lone CR; a line starting with
//! `:` is a comment; `field:value` with one optional space after the colon
//! (a line without a colon is a field with an empty value); `data` lines are
//! joined with `\n`; `event`, `id` and `retry` are read; an event ends at a
//! blank line; a UTF-8 BOM at the very start of the stream is ignored when
//! reading fields. A chunk may split the input anywhere (mid-line, between CR
//! and LF, inside a UTF-8 character): the events are the same whatever the
//! split.
//!
//! Cost: an event that lies whole inside one pushed chunk is a zero-copy
//! slice of it (and so is its `data` when it has a single `data` line); only
//! an event that straddles chunks is copied, once.
//!
//! Two edge cases, both documented on the methods concerned:
//! - A blank line ended by a lone CR at the very end of the pushed bytes is
//!   held back until the next byte shows whether an LF follows (CRLF is one
//!   line end). Call [`SseParser::finish`] at end of input to release it.
//! - An event longer than the cap ([`DEFAULT_MAX_EVENT_BYTES`], see
//!   [`SseParser::with_max_event_bytes`]) is never held whole: it comes out
//!   as one or more fragments flagged [`Oversized`], whose `data` is not
//!   read. The caller forwards them as they come (their `raw` joined is the
//!   event) without reading it.

use bytes::{Buf, Bytes, BytesMut};

/// Default cap on one event's size: 4 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One event (or one fragment of an oversized event) taken from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event's exact bytes, including its terminating blank line: forward
    /// these unchanged. The `raw` of all events plus the pending tail is the
    /// input, byte for byte.
    pub raw: Bytes,
    /// The `data` lines joined with `\n` (raw bytes, not UTF-8-checked);
    /// `None` when the event had no `data` field (a comment or keep-alive,
    /// or a stray blank line).
    pub data: Option<Bytes>,
    /// The `event:` field when present (rare, so only then allocated).
    pub event: Option<String>,
    /// The `id:` field when present (and free of NUL).
    pub id: Option<String>,
    /// The `retry:` field when present and all ASCII digits.
    pub retry: Option<u64>,
    /// `Some` when this is a fragment of an event larger than the cap; its
    /// fields other than `raw` are then empty.
    pub oversized: Option<Oversized>,
}

/// Which fragment of an oversized event an [`SseEvent`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversized {
    /// A piece of the event; more follows.
    Part,
    /// The piece that ends the event (it ends with the blank line). An
    /// oversized event that arrived whole is a single `End`.
    End,
}

impl SseEvent {
    fn fragment(raw: Bytes, which: Oversized) -> Self {
        SseEvent {
            raw,
            data: None,
            event: None,
            id: None,
            retry: None,
            oversized: Some(which),
        }
    }
}

/// Where the scan of the current (incomplete) event stands, so that no byte
/// is examined twice across pushes.
#[derive(Debug, Clone, Copy)]
struct Scan {
    /// Bytes of the current event examined so far.
    scanned: usize,
    /// The next byte starts a line.
    line_start: bool,
    /// The last byte was a CR ending a non-blank line (an LF next belongs to it).
    after_cr: bool,
    /// The last byte was a CR ending the blank line: the event ends here, or
    /// one byte later if an LF follows.
    blank_cr: bool,
}

impl Scan {
    const START: Scan = Scan {
        scanned: 0,
        line_start: true,
        after_cr: false,
        blank_cr: false,
    };
}

/// What scanning one contiguous slice came to.
enum Step {
    /// The event ends at this absolute offset (exclusive).
    End(usize),
    /// The blank line's CR was seen; the byte after it decides.
    BlankCr,
    /// The slice was used up without reaching the end of the event.
    Exhausted,
}

/// The incremental parser: push chunks, pull complete events.
#[derive(Debug)]
pub struct SseParser {
    /// Pending bytes that came from earlier chunks (only when an event
    /// straddles chunks, or when the caller pushed without draining).
    carry: BytesMut,
    /// The unconsumed rest of the last pushed chunk; the pending input is
    /// `carry` followed by `buf`.
    buf: Bytes,
    scan: Scan,
    max_event_bytes: usize,
    /// Part of the current event already went out as an oversized fragment.
    in_oversized: bool,
    /// `finish` was called: no more bytes will come.
    eof: bool,
    /// No event has been taken yet (a leading BOM is to be skipped).
    at_stream_start: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new()
    }
}

impl SseParser {
    /// A parser with the default cap of [`DEFAULT_MAX_EVENT_BYTES`].
    pub fn new() -> Self {
        SseParser {
            carry: BytesMut::new(),
            buf: Bytes::new(),
            scan: Scan::START,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            in_oversized: false,
            eof: false,
            at_stream_start: true,
        }
    }

    /// Sets the cap on one event's size (at least 1 byte).
    pub fn with_max_event_bytes(mut self, max: usize) -> Self {
        self.max_event_bytes = max.max(1);
        self
    }

    /// Appends a chunk of the stream. For zero-copy, drain `next_event`
    /// after each push; pushing again first copies the undrained bytes.
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        if !self.buf.is_empty() {
            self.carry.extend_from_slice(&self.buf);
        }
        self.buf = chunk;
    }

    /// Marks the end of input: a final blank line that ended with a lone CR
    /// (held back to see whether an LF follows) now ends its event. Call it
    /// after the last push, then drain `next_event`, then `take_pending`.
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// Bytes pushed but not yet returned in an event.
    pub fn pending_len(&self) -> usize {
        self.carry.len() + self.buf.len()
    }

    /// The next complete event (terminated by a blank line), or the next
    /// fragment of an oversized one; `None` until more bytes arrive.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        match self.find_end() {
            Some(end) => {
                let raw = self.cut(end);
                self.scan = Scan::START;
                let oversized = std::mem::take(&mut self.in_oversized);
                if oversized || raw.len() > self.max_event_bytes {
                    self.at_stream_start = false;
                    return Some(SseEvent::fragment(raw, Oversized::End));
                }
                Some(self.parse(raw))
            }
            None => {
                // Everything pending was scanned and belongs to the current
                // event (unless a blank-line CR is waiting for one byte).
                let pending = self.pending_len();
                let over = self.in_oversized || pending > self.max_event_bytes;
                let bom_wait = self.at_stream_start && self.scan.scanned == 0;
                if pending == 0 || self.scan.blank_cr || bom_wait || !over {
                    return None;
                }
                let raw = self.cut(pending);
                self.scan.scanned = 0;
                self.in_oversized = true;
                self.at_stream_start = false;
                Some(SseEvent::fragment(raw, Oversized::Part))
            }
        }
    }

    /// Takes the bytes of the incomplete trailing event (at end of input:
    /// the upstream stopped mid-event) and resets the parser's event state.
    pub fn take_pending(&mut self) -> Bytes {
        self.scan = Scan::START;
        self.in_oversized = false;
        if self.carry.is_empty() {
            return std::mem::take(&mut self.buf);
        }
        self.carry.extend_from_slice(&self.buf);
        self.buf = Bytes::new();
        self.carry.split().freeze()
    }

    /// Scans the pending bytes for the end of the current event, resuming
    /// where the last scan stopped. Returns the event's length.
    fn find_end(&mut self) -> Option<usize> {
        if self.at_stream_start && self.scan.scanned == 0 {
            // A leading BOM is not part of the first line: skip it, waiting
            // for three bytes when the ones so far could still be a BOM.
            let mut head = [0u8; 3];
            let mut len = 0;
            for (slot, &b) in head
                .iter_mut()
                .zip(self.carry.iter().chain(self.buf.iter()))
            {
                *slot = b;
                len += 1;
            }
            if len < BOM.len() && BOM.starts_with(&head[..len]) && !self.eof {
                return None;
            }
            if head[..len] == *BOM {
                self.scan.scanned = BOM.len();
            }
        }
        loop {
            let pos = self.scan.scanned;
            let carry_len = self.carry.len();
            let slice: &[u8] = if pos < carry_len {
                &self.carry[pos..]
            } else if pos - carry_len < self.buf.len() {
                &self.buf[pos - carry_len..]
            } else {
                &[]
            };
            if self.scan.blank_cr {
                return match slice.first() {
                    Some(b'\n') => Some(pos + 1),
                    Some(_) => Some(pos),
                    None if self.eof => Some(pos),
                    None => None,
                };
            }
            if slice.is_empty() {
                return None;
            }
            match scan_slice(&mut self.scan, slice, pos) {
                Step::End(end) => return Some(end),
                Step::BlankCr | Step::Exhausted => continue,
            }
        }
    }

    /// Removes the first `end` pending bytes and returns them as one `Bytes`
    /// (a zero-copy slice unless they straddle `carry` and `buf`).
    fn cut(&mut self, end: usize) -> Bytes {
        let carry_len = self.carry.len();
        if carry_len == 0 {
            return self.buf.split_to(end.min(self.buf.len()));
        }
        if end <= carry_len {
            return self.carry.split_to(end).freeze();
        }
        let from_buf = (end - carry_len).min(self.buf.len());
        self.carry.extend_from_slice(&self.buf[..from_buf]);
        self.buf.advance(from_buf);
        self.carry.split().freeze()
    }

    /// Reads the fields of one complete event.
    fn parse(&mut self, raw: Bytes) -> SseEvent {
        let mut start = 0;
        if std::mem::take(&mut self.at_stream_start) && raw.starts_with(BOM) {
            start = BOM.len();
        }
        let bytes: &[u8] = &raw;
        let mut data = Data::Absent;
        let mut event = None;
        let mut id = None;
        let mut retry = None;
        while start < bytes.len() {
            let end = bytes[start..]
                .iter()
                .position(|&c| c == b'\n' || c == b'\r')
                .map_or(bytes.len(), |k| start + k);
            let line = start..end;
            start = end + 1;
            if bytes.get(end) == Some(&b'\r') && bytes.get(end + 1) == Some(&b'\n') {
                start += 1;
            }
            if line.is_empty() {
                break; // the blank line that ends the event
            }
            if bytes[line.start] == b':' {
                continue; // comment
            }
            let (name, mut value) = match bytes[line.clone()].iter().position(|&c| c == b':') {
                Some(colon) => (
                    line.start..line.start + colon,
                    line.start + colon + 1..line.end,
                ),
                None => (line.clone(), line.end..line.end),
            };
            if bytes.get(value.start) == Some(&b' ') && !value.is_empty() {
                value.start += 1;
            }
            let text = || String::from_utf8_lossy(&bytes[value.clone()]).into_owned();
            match &bytes[name] {
                b"data" => data.push(&raw, value.clone()),
                b"event" => event = Some(text()),
                b"id" if !bytes[value.clone()].contains(&0) => id = Some(text()),
                b"retry" => retry = parse_retry(&bytes[value.clone()]).or(retry),
                _ => {}
            }
        }
        let data = data.finish(&raw);
        SseEvent {
            raw,
            data,
            event,
            id,
            retry,
            oversized: None,
        }
    }
}

/// Scans `slice` (which starts at absolute offset `pos` of the current
/// event) for the blank line that ends the event, updating `scan`.
fn scan_slice(scan: &mut Scan, slice: &[u8], pos: usize) -> Step {
    let mut i = 0;
    while i < slice.len() {
        let b = slice[i];
        if scan.after_cr {
            scan.after_cr = false;
            if b == b'\n' {
                i += 1;
                continue; // the LF of a CRLF: same line end
            }
        }
        if b == b'\n' || b == b'\r' {
            if scan.line_start {
                if b == b'\n' {
                    return Step::End(pos + i + 1);
                }
                scan.blank_cr = true;
                scan.scanned = pos + i + 1;
                return Step::BlankCr;
            }
            scan.line_start = true;
            scan.after_cr = b == b'\r';
            i += 1;
        } else {
            scan.line_start = false;
            i += slice[i..]
                .iter()
                .position(|&c| c == b'\n' || c == b'\r')
                .unwrap_or(slice.len() - i);
        }
    }
    scan.scanned = pos + slice.len();
    Step::Exhausted
}

/// `retry:` takes only ASCII digits; anything else is ignored.
fn parse_retry(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// The `data` lines of an event: one line stays a slice of `raw`; more are
/// joined into a new buffer.
enum Data {
    Absent,
    One(std::ops::Range<usize>),
    Many(BytesMut),
}

impl Data {
    fn push(&mut self, raw: &Bytes, value: std::ops::Range<usize>) {
        *self = match std::mem::replace(self, Data::Absent) {
            Data::Absent => Data::One(value),
            Data::One(first) => {
                let mut joined = BytesMut::with_capacity(first.len() + 1 + value.len());
                joined.extend_from_slice(&raw[first]);
                joined.extend_from_slice(b"\n");
                joined.extend_from_slice(&raw[value]);
                Data::Many(joined)
            }
            Data::Many(mut joined) => {
                joined.extend_from_slice(b"\n");
                joined.extend_from_slice(&raw[value]);
                Data::Many(joined)
            }
        };
    }

    fn finish(self, raw: &Bytes) -> Option<Bytes> {
        match self {
            Data::Absent => None,
            Data::One(range) => Some(raw.slice(range)),
            Data::Many(joined) => Some(joined.freeze()),
        }
    }
}

#[cfg(test)]
mod tests;
