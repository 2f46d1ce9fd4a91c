//! The `gzip` step's compression (flate2): a whole body at once, or a
//! stream incrementally, each frame sync-flushed so that every event can be
//! decompressed as soon as it arrives.

use std::io::Write;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;

/// A whole body, gzip-compressed.
pub fn compress(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 2 + 32), Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

/// An incremental gzip stream.
pub struct Gzip(GzEncoder<Vec<u8>>);

impl std::fmt::Debug for Gzip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gzip")
    }
}

impl Gzip {
    /// A new stream (the gzip header goes out with the first frame).
    pub fn new() -> Gzip {
        Gzip(GzEncoder::new(Vec::with_capacity(256), Compression::fast()))
    }

    /// The compressed bytes of one frame, sync-flushed: everything written
    /// so far can be decompressed from what has been sent.
    pub fn frame(&mut self, data: &[u8]) -> Bytes {
        let _ = self.0.write_all(data);
        let _ = self.0.flush();
        Bytes::from(std::mem::take(self.0.get_mut()))
    }

    /// The end of the stream (the last block and the gzip trailer).
    pub fn finish(self) -> Bytes {
        Bytes::from(self.0.finish().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn whole_bodies_round_trip() {
        assert_eq!(
            gunzip(&compress(b"hello hello hello")),
            b"hello hello hello"
        );
    }

    #[test]
    fn each_frame_decompresses_on_its_own() {
        let mut gz = Gzip::new();
        let mut decoder = flate2::write::GzDecoder::new(Vec::new());
        for event in ["data: one\n\n", "data: two\n\n"] {
            let frame = gz.frame(event.as_bytes());
            decoder.write_all(&frame).unwrap();
            decoder.flush().unwrap();
            assert_eq!(std::mem::take(decoder.get_mut()), event.as_bytes());
        }
        decoder.write_all(&gz.finish()).unwrap();
        assert!(decoder.finish().unwrap().is_empty());
    }
}
