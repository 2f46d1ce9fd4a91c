//! Throughput of the SSE parser on a realistic chat-completion stream:
//! 1000 `chat.completion.chunk` events of about 230 bytes each, pushed as
//! network-like chunks of varying size (and, for comparison, as one chunk,
//! the zero-copy path). Run with `cargo bench --bench sse`.

use std::hint::black_box;

use backstop::sse::SseParser;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The stream's bytes: a role chunk, 1000 content deltas, a finish chunk,
/// a usage chunk and `[DONE]`, as OpenAI sends them.
fn stream() -> Vec<u8> {
    let head = r#"{"id":"chatcmpl-AbCdEfGhIjKlMnOpQrStUvWxYz012","object":"chat.completion.chunk","created":1732500000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":"#;
    let mut out = format!("data: {head}{{\"role\":\"assistant\",\"content\":\"\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n");
    let words = [
        "Hello", " world", ",", " the", " quick", " brown", " fox", " jumps", " é", " 漢字", "\\n",
    ];
    for i in 0..1000 {
        let word = words[i % words.len()];
        out.push_str(&format!("data: {head}{{\"content\":\"{word}\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"));
    }
    out.push_str(&format!(
        "data: {head}{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}]}}\n\n"
    ));
    out.push_str("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":1000,\"total_tokens\":1020}}\n\n");
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

/// Cuts the stream into chunks of 1 to 1460 bytes (a TCP segment's
/// payload), with an occasional 16 KiB read, from a fixed-seed LCG.
fn network_chunks(input: &[u8]) -> Vec<Bytes> {
    let all = Bytes::copy_from_slice(input);
    let mut seed: u64 = 0x5eed;
    let mut chunks = Vec::new();
    let mut at = 0;
    while at < all.len() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = (seed >> 33) as usize;
        let size = if r.is_multiple_of(10) {
            16 * 1024
        } else {
            1 + r % 1460
        };
        let end = (at + size).min(all.len());
        chunks.push(all.slice(at..end));
        at = end;
    }
    chunks
}

fn parse(chunks: &[Bytes]) -> usize {
    let mut parser = SseParser::new();
    let mut data_bytes = 0;
    for chunk in chunks {
        parser.push(chunk.clone());
        while let Some(event) = parser.next_event() {
            data_bytes += event.data.map_or(0, |d| d.len());
        }
    }
    data_bytes
}

fn bench(c: &mut Criterion) {
    let input = stream();
    let network = network_chunks(&input);
    let whole = vec![Bytes::from(input.clone())];
    let mut group = c.benchmark_group("sse");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("chat_stream_network_chunks", |b| {
        b.iter(|| parse(black_box(&network)))
    });
    group.bench_function("chat_stream_one_chunk", |b| {
        b.iter(|| parse(black_box(&whole)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
