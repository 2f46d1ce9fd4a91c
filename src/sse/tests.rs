//! Tests of the SSE parser: tables of exact events, the hold-back and cap
//! edge cases, and properties checked against a naive whole-input reference
//! parser under arbitrary splits.

use super::*;
use proptest::prelude::*;

/// What a test compares: raw, data, event, id, retry, oversized.
type Seen = (
    Vec<u8>,
    Option<Vec<u8>>,
    Option<String>,
    Option<String>,
    Option<u64>,
    Option<Oversized>,
);

fn seen(e: &SseEvent) -> Seen {
    (
        e.raw.to_vec(),
        e.data.as_ref().map(|d| d.to_vec()),
        e.event.clone(),
        e.id.clone(),
        e.retry,
        e.oversized,
    )
}

fn drain(p: &mut SseParser, out: &mut Vec<Seen>) {
    while let Some(e) = p.next_event() {
        out.push(seen(&e));
    }
}

/// Parses `input` pushed in pieces cut at `splits`, draining after each
/// push (or only at the end), then `finish`. Returns events and pending.
fn parse_split(
    input: &[u8],
    splits: &[usize],
    drain_each: bool,
    cap: usize,
) -> (Vec<Seen>, Vec<u8>) {
    let mut cuts: Vec<usize> = splits.iter().map(|&s| s.min(input.len())).collect();
    cuts.push(0);
    cuts.push(input.len());
    cuts.sort_unstable();
    cuts.dedup();
    let mut p = SseParser::new().with_max_event_bytes(cap);
    let mut out = Vec::new();
    for w in cuts.windows(2) {
        p.push(Bytes::copy_from_slice(&input[w[0]..w[1]]));
        if drain_each {
            drain(&mut p, &mut out);
        }
    }
    p.finish();
    drain(&mut p, &mut out);
    let n = p.pending_len();
    let pending = p.take_pending();
    assert_eq!(pending.len(), n);
    (out, pending.to_vec())
}

fn data_event(raw: &str, data: Option<&str>) -> Seen {
    (
        raw.as_bytes().to_vec(),
        data.map(|d| d.as_bytes().to_vec()),
        None,
        None,
        None,
        None,
    )
}

#[test]
fn table_of_single_events() {
    // (input, expected data, event, id, retry)
    type Row = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Option<u64>,
    );
    let rows: [Row; 17] = [
        ("data: {\"a\":1}\n\n", Some("{\"a\":1}"), None, None, None),
        ("data: x\r\n\r\n", Some("x"), None, None, None),
        ("data: x\r\r", Some("x"), None, None, None),
        ("data:x\n\n", Some("x"), None, None, None),
        ("data:  x\n\n", Some(" x"), None, None, None),
        (
            "data: a\ndata: b\ndata:\n\n",
            Some("a\nb\n"),
            None,
            None,
            None,
        ),
        ("data\n\n", Some(""), None, None, None),
        ("data:\n\n", Some(""), None, None, None),
        (": keep-alive\n\n", None, None, None, None),
        ("\n", None, None, None, None),
        (
            "event: error\ndata: {}\n\n",
            Some("{}"),
            Some("error"),
            None,
            None,
        ),
        ("event\ndata: 1\n\n", Some("1"), Some(""), None, None),
        (
            "id: 7\nretry: 1500\ndata: 1\n\n",
            Some("1"),
            None,
            Some("7"),
            Some(1500),
        ),
        (
            "id: a\0b\nretry: 15x\ndata: 1\n\n",
            Some("1"),
            None,
            None,
            None,
        ),
        ("Data: no\nfoo: bar\n\n", None, None, None, None),
        ("\u{feff}data: bom\n\n", Some("bom"), None, None, None),
        ("data: a:b: c\n\n", Some("a:b: c"), None, None, None),
    ];
    for (input, data, event, id, retry) in rows {
        let mut p = SseParser::new();
        p.push(Bytes::from(input));
        p.finish();
        let e = p
            .next_event()
            .unwrap_or_else(|| panic!("no event for {input:?}"));
        assert_eq!(e.raw, input.as_bytes(), "{input:?}");
        assert_eq!(e.data.as_deref(), data.map(str::as_bytes), "{input:?}");
        assert_eq!(e.event.as_deref(), event, "{input:?}");
        assert_eq!(e.id.as_deref(), id, "{input:?}");
        assert_eq!(e.retry, retry, "{input:?}");
        assert_eq!(e.oversized, None);
        assert_eq!(p.next_event(), None, "{input:?}");
        assert_eq!(p.pending_len(), 0, "{input:?}");
    }
}

#[test]
fn a_bom_is_skipped_only_at_the_start_of_the_stream() {
    let mut p = SseParser::new();
    p.push(Bytes::from("\u{feff}data: 1\n\n\u{feff}data: 2\n\n"));
    assert_eq!(p.next_event().and_then(|e| e.data), Some(Bytes::from("1")));
    // Mid-stream the BOM is part of the field name, which is then unknown.
    assert_eq!(p.next_event().map(|e| e.data), Some(None));
}

#[test]
fn a_realistic_stream_gives_its_events_in_order() {
    let input = concat!(
        ": OPENROUTER PROCESSING\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hé\"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n",
    );
    let (events, pending) = parse_split(input.as_bytes(), &[], true, DEFAULT_MAX_EVENT_BYTES);
    let datas: Vec<Option<&[u8]>> = events.iter().map(|e| e.1.as_deref()).collect();
    assert_eq!(
        datas,
        [
            None,
            Some(&b"{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}"[..]),
            Some("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hé\"}}]}".as_bytes()),
            Some(&b"{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}"[..]),
            Some(&b"[DONE]"[..]),
        ]
    );
    assert!(pending.is_empty());
    // Every split into two pieces, and byte by byte, gives the same events.
    for cut in 0..=input.len() {
        assert_eq!(
            parse_split(input.as_bytes(), &[cut], true, DEFAULT_MAX_EVENT_BYTES),
            (events.clone(), vec![])
        );
    }
    let every: Vec<usize> = (0..input.len()).collect();
    assert_eq!(
        parse_split(input.as_bytes(), &every, true, DEFAULT_MAX_EVENT_BYTES),
        (events, vec![])
    );
}

#[test]
fn events_inside_one_chunk_are_zero_copy_slices_of_it() {
    let chunk = Bytes::from("data: one\n\ndata: two\n\ndata: thr");
    let mut p = SseParser::new();
    p.push(chunk.clone());
    let one = p.next_event().unwrap();
    let two = p.next_event().unwrap();
    assert_eq!(one.raw.as_ptr(), chunk.as_ptr());
    assert_eq!(
        one.data.as_ref().map(|d| d.as_ptr()),
        Some(chunk[6..].as_ptr())
    );
    assert_eq!(two.raw.as_ptr(), chunk[11..].as_ptr());
    assert_eq!(p.next_event(), None);
    assert_eq!(p.pending_len(), 9);
    // The straddling event is copied once; the one after it is a slice again.
    let next = Bytes::from("ee\n\ndata: four\n\n");
    p.push(next.clone());
    assert_eq!(
        p.next_event().map(|e| e.raw),
        Some(Bytes::from("data: three\n\n"))
    );
    let four = p.next_event().unwrap();
    assert_eq!(four.raw.as_ptr(), next[4..].as_ptr());
    assert_eq!(p.next_event(), None);
}

#[test]
fn a_blank_line_ending_in_a_lone_cr_waits_for_the_next_byte_or_finish() {
    let mut p = SseParser::new();
    p.push(Bytes::from("data: a\r\r"));
    assert_eq!(p.next_event(), None);
    p.push(Bytes::from("\ndata: b\r\r"));
    // The LF belonged to the CR: one event "data: a\r\r\n", not an extra blank line.
    assert_eq!(
        p.next_event().map(|e| e.raw),
        Some(Bytes::from("data: a\r\r\n"))
    );
    assert_eq!(p.next_event(), None);
    p.finish();
    assert_eq!(
        p.next_event().map(|e| seen(&e)),
        Some(data_event("data: b\r\r", Some("b")))
    );
    assert_eq!(p.take_pending(), Bytes::new());
}

#[test]
fn an_incomplete_tail_is_returned_by_take_pending() {
    let mut p = SseParser::new();
    p.push(Bytes::from("data: {\"a\":1}\n\ndata: {\"b\""));
    p.push(Bytes::from(":2}\n"));
    assert_eq!(
        p.next_event().map(|e| e.raw),
        Some(Bytes::from("data: {\"a\":1}\n\n"))
    );
    assert_eq!(p.next_event(), None);
    assert_eq!(p.pending_len(), 14);
    p.finish();
    assert_eq!(p.next_event(), None);
    assert_eq!(p.take_pending(), Bytes::from("data: {\"b\":2}\n"));
    assert_eq!(p.pending_len(), 0);
}

#[test]
fn an_event_over_the_cap_comes_out_as_flagged_fragments() {
    let big = format!("data: {}\n\n", "x".repeat(40));
    let input = format!("data: small\n\n{big}data: after\n\n");
    let mut p = SseParser::new().with_max_event_bytes(16);
    let mut out = Vec::new();
    for piece in input.as_bytes().chunks(10) {
        p.push(Bytes::copy_from_slice(piece));
        drain(&mut p, &mut out);
    }
    let flags: Vec<Option<Oversized>> = out.iter().map(|e| e.5).collect();
    assert_eq!(
        flags,
        [
            None,
            Some(Oversized::Part),
            Some(Oversized::Part),
            Some(Oversized::Part),
            Some(Oversized::Part),
            Some(Oversized::End),
            None
        ]
    );
    assert_eq!(out[0], data_event("data: small\n\n", Some("small")));
    assert_eq!(out[6], data_event("data: after\n\n", Some("after")));
    let joined: Vec<u8> = out[1..6].iter().flat_map(|e| e.0.clone()).collect();
    assert_eq!(joined, big.as_bytes());
    assert!(out[1..6].iter().all(|e| e.1.is_none()));
    // Arriving whole, the same event is one End fragment.
    let mut p = SseParser::new().with_max_event_bytes(16);
    p.push(Bytes::from(big.clone()));
    assert_eq!(
        p.next_event().map(|e| (e.raw, e.data, e.oversized)),
        Some((Bytes::from(big), None, Some(Oversized::End)))
    );
}

// ---- reference parser and properties ----

/// A naive whole-input parser written straight from the WHATWG algorithm
/// (at end of input): the oracle for the property tests.
fn reference(input: &[u8]) -> (Vec<Seen>, Vec<u8>) {
    let mut lines = Vec::new(); // (start, content_end, next_start)
    let mut i = 0;
    while i < input.len() {
        let Some(k) = input[i..].iter().position(|&c| c == b'\n' || c == b'\r') else {
            break;
        };
        let end = i + k;
        let next = if input[end] == b'\r' && input.get(end + 1) == Some(&b'\n') {
            end + 2
        } else {
            end + 1
        };
        lines.push((i, end, next));
        i = next;
    }
    let mut events = Vec::new();
    let mut event_start = 0;
    let mut data: Option<Vec<u8>> = None;
    let (mut event, mut id, mut retry) = (None, None, None);
    for (start, end, next) in lines {
        let mut line = &input[start..end];
        if events.is_empty() && start == 0 && line.starts_with(BOM) {
            line = &line[3..];
        }
        if line.is_empty() {
            events.push((
                input[event_start..next].to_vec(),
                data.take(),
                event.take(),
                id.take(),
                retry.take(),
                None,
            ));
            event_start = next;
            continue;
        }
        if line[0] == b':' {
            continue;
        }
        let (name, value) = match line.iter().position(|&c| c == b':') {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let text = String::from_utf8_lossy(value).into_owned();
        match name {
            b"data" => match data.as_mut() {
                Some(d) => {
                    d.push(b'\n');
                    d.extend_from_slice(value);
                }
                None => data = Some(value.to_vec()),
            },
            b"event" => event = Some(text),
            b"id" if !value.contains(&0) => id = Some(text),
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                retry = text.parse().ok().or(retry)
            }
            _ => {}
        }
    }
    (events, input[event_start..].to_vec())
}

fn line_strategy() -> impl Strategy<Value = Vec<u8>> {
    let text = "[a-z{}\":, é漢😀]{0,12}";
    let content = prop_oneof![
        4 => text.prop_map(|t| format!("data: {t}")),
        1 => text.prop_map(|t| format!("data:{t}")),
        1 => text.prop_map(|t| format!(":{t}")),
        1 => Just("event: delta".to_string()),
        1 => Just("id: 42".to_string()),
        1 => Just("retry: 300".to_string()),
        1 => Just("data".to_string()),
        2 => Just(String::new()),
    ];
    let end = prop_oneof![6 => Just("\n"), 2 => Just("\r\n"), 1 => Just("\r")];
    (content, end).prop_map(|(c, e)| format!("{c}{e}").into_bytes())
}

fn stream_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    (
        any::<bool>(),
        prop::collection::vec(line_strategy(), 0..40),
        "[a-z: ]{0,6}",
    )
        .prop_map(|(bom, lines, tail)| {
            let mut input = if bom { BOM.to_vec() } else { Vec::new() };
            input.extend(lines.concat());
            input.extend(tail.as_bytes());
            input
        })
        .prop_flat_map(|input| {
            let n = input.len();
            (Just(input), prop::collection::vec(0..=n, 0..12))
        })
}

/// Merges each run of oversized fragments into one raw blob, for comparing
/// runs that fragment differently.
fn merge_fragments(events: &[Seen]) -> Vec<(Vec<u8>, bool)> {
    let mut out: Vec<(Vec<u8>, bool)> = Vec::new();
    let mut open = false;
    for e in events {
        match e.5 {
            None => out.push((e.0.clone(), false)),
            Some(which) => {
                if open {
                    if let Some(last) = out.last_mut() {
                        last.0.extend_from_slice(&e.0);
                    }
                } else {
                    out.push((e.0.clone(), true));
                }
                open = which == Oversized::Part;
            }
        }
    }
    out
}

proptest! {
    #[test]
    fn any_split_gives_the_reference_events((input, splits) in stream_strategy()) {
        let expected = reference(&input);
        let whole = parse_split(&input, &[], true, DEFAULT_MAX_EVENT_BYTES);
        prop_assert_eq!(&whole, &expected);
        prop_assert_eq!(&parse_split(&input, &splits, true, DEFAULT_MAX_EVENT_BYTES), &expected);
        prop_assert_eq!(&parse_split(&input, &splits, false, DEFAULT_MAX_EVENT_BYTES), &expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_lose_nothing(
        input in prop::collection::vec(prop_oneof![3 => any::<u8>(), 1 => Just(b'\n'), 1 => Just(b'\r'), 1 => Just(b':')], 0..600),
        splits in prop::collection::vec(0usize..600, 0..20),
        cap in 1usize..80,
    ) {
        let (events, pending) = parse_split(&input, &splits, true, cap);
        let mut all: Vec<u8> = events.iter().flat_map(|e| e.0.clone()).collect();
        all.extend(&pending);
        prop_assert_eq!(&all, &input);
        // Fragmenting may differ with the split; the events may not.
        let (whole, whole_pending) = parse_split(&input, &[], true, cap);
        prop_assert_eq!(merge_fragments(&events), merge_fragments(&whole));
        prop_assert_eq!(pending.is_empty(), whole_pending.is_empty());
        // No fragment and no kept event is above the cap unless it arrived whole.
        for e in events.iter().filter(|e| e.5.is_none()) {
            prop_assert!(e.0.len() <= cap);
        }
    }
}
