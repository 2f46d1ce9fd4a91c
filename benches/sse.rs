//! Placeholder until `backstop::sse` is exported (replaced by the real bench).
fn main() {}
