//! The mock's shared state: request counters, what each `x-mock-key` has
//! seen (for sequencing and for harnesses to inspect), video tasks being
//! polled, background responses, and the configured mix. Requests without
//! a key take no lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::mix::Mix;
use super::scenario::{Step, StepError, OK};
use super::{MockConfig, RecordedRequest};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct KeyRecord {
    hits: u64,
    last: RecordedRequest,
}

/// One video task, as its polls go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Video {
    /// The model it was submitted with.
    pub model: String,
    polls: u64,
    answered: u64,
}

/// What one poll of a video task answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// 404 `task_not_exist`.
    Missing,
    /// `queued`, progress 0.
    Queued,
    /// `succeed` (Kling's spelling), with the output.
    Succeed,
}

impl Video {
    /// The next poll: the first `missing_first` polls of the task are
    /// missing, then the first answered one is queued, the rest succeed.
    pub fn poll(&mut self, missing_first: u32) -> Phase {
        self.polls += 1;
        if self.polls <= u64::from(missing_first) {
            return Phase::Missing;
        }
        self.answered += 1;
        if self.answered == 1 {
            Phase::Queued
        } else {
            Phase::Succeed
        }
    }
}

/// A background response (Responses API), as created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The number of the request that created it (`resp_mock_{n}`).
    pub n: u64,
    /// `created_at`.
    pub created: u64,
    /// The model it was created with.
    pub model: String,
    /// Whether it was cancelled.
    pub cancelled: bool,
}

/// The most background responses kept (the oldest go first).
pub const MAX_STORED_RESPONSES: usize = 100_000;

/// State shared by every connection of one mock server.
#[derive(Debug)]
pub struct State {
    mix: Option<Mix>,
    /// Default stream content chunks.
    pub chunks: usize,
    /// Default pause between stream events.
    pub chunk_delay: Duration,
    seq: AtomicU64,
    total: AtomicU64,
    keys: Mutex<HashMap<String, KeyRecord>>,
    videos: Mutex<HashMap<String, Video>>,
    responses: Mutex<BTreeMap<u64, StoredResponse>>,
}

impl State {
    /// Checks the configuration.
    pub fn new(config: &MockConfig) -> Result<State, StepError> {
        Ok(State {
            mix: Mix::new(&config.mix)?,
            chunks: config.chunks.min(super::scenario::MAX_CHUNKS),
            chunk_delay: config.chunk_delay,
            seq: AtomicU64::new(0),
            total: AtomicU64::new(0),
            keys: Mutex::new(HashMap::new()),
            videos: Mutex::new(HashMap::new()),
            responses: Mutex::new(BTreeMap::new()),
        })
    }

    /// The next request's sequence number (from 1).
    pub fn next_n(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Counts a `/v1` request; with a key, also records it and returns how
    /// many requests that key has seen, this one included (0 without a key).
    pub fn record(&self, key: Option<&str>, request: impl FnOnce() -> RecordedRequest) -> u64 {
        self.total.fetch_add(1, Ordering::Relaxed);
        let Some(key) = key else { return 0 };
        let last = request();
        let mut keys = lock(&self.keys);
        match keys.get_mut(key) {
            Some(record) => {
                record.hits += 1;
                record.last = last;
                record.hits
            }
            None => {
                keys.insert(key.to_owned(), KeyRecord { hits: 1, last });
                1
            }
        }
    }

    /// A step drawn from the mix, or `ok` without one.
    pub fn draw(&self) -> &Step {
        match &self.mix {
            Some(mix) => mix.pick(rand::random_range(0..mix.total())),
            None => &OK,
        }
    }

    /// Requests seen with a key.
    pub fn hits(&self, key: &str) -> u64 {
        lock(&self.keys).get(key).map_or(0, |r| r.hits)
    }

    /// All `/v1` requests seen.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// The last request seen with a key.
    pub fn last_request(&self, key: &str) -> Option<RecordedRequest> {
        lock(&self.keys).get(key).map(|r| r.last.clone())
    }

    /// `{"total":N,"by_key":{"k":n}}`.
    pub fn stats_json(&self) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Stats {
            total: u64,
            by_key: BTreeMap<String, u64>,
        }
        let by_key = lock(&self.keys)
            .iter()
            .map(|(k, r)| (k.clone(), r.hits))
            .collect();
        serde_json::to_vec(&Stats {
            total: self.total(),
            by_key,
        })
        .unwrap_or_default()
    }

    /// Keeps a background response (dropping the oldest beyond
    /// [`MAX_STORED_RESPONSES`]).
    pub fn store_response(&self, response: StoredResponse) {
        let mut responses = lock(&self.responses);
        responses.insert(response.n, response);
        while responses.len() > MAX_STORED_RESPONSES {
            responses.pop_first();
        }
    }

    /// The background response created by request `n`.
    pub fn response(&self, n: u64) -> Option<StoredResponse> {
        lock(&self.responses).get(&n).cloned()
    }

    /// Cancels the background response created by request `n`.
    pub fn cancel_response(&self, n: u64) -> Option<StoredResponse> {
        let mut responses = lock(&self.responses);
        let stored = responses.get_mut(&n)?;
        stored.cancelled = true;
        Some(stored.clone())
    }

    /// Forgets every count, key, video, response and the request sequence.
    pub fn reset(&self) {
        lock(&self.keys).clear();
        lock(&self.videos).clear();
        lock(&self.responses).clear();
        self.total.store(0, Ordering::Relaxed);
        self.seq.store(0, Ordering::Relaxed);
    }

    /// Registers a submitted video task.
    pub fn create_video(&self, id: String, model: &str) {
        lock(&self.videos).insert(
            id,
            Video {
                model: model.to_owned(),
                ..Video::default()
            },
        );
    }

    /// Polls a video task (one never submitted is polled all the same) and
    /// returns its model and what this poll answers.
    pub fn poll_video(&self, id: &str, missing_first: u32) -> (String, Phase) {
        let mut videos = lock(&self.videos);
        let video = videos.entry(id.to_owned()).or_insert_with(|| Video {
            model: super::request::DEFAULT_MODEL.to_owned(),
            ..Video::default()
        });
        let phase = video.poll(missing_first);
        (video.model.clone(), phase)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_polls() {
        let cases: [(u32, &[Phase]); 3] = [
            (0, &[Phase::Queued, Phase::Succeed, Phase::Succeed]),
            (1, &[Phase::Missing, Phase::Queued, Phase::Succeed]),
            (
                2,
                &[
                    Phase::Missing,
                    Phase::Missing,
                    Phase::Queued,
                    Phase::Succeed,
                ],
            ),
        ];
        for (missing, want) in cases {
            let mut v = Video::default();
            let got: Vec<Phase> = want.iter().map(|_| v.poll(missing)).collect();
            assert_eq!(got, want, "{missing}");
        }
    }

    fn request() -> RecordedRequest {
        RecordedRequest {
            method: http::Method::POST,
            path: "/v1/x".to_owned(),
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::new(),
        }
    }

    #[test]
    fn counts_keys_and_resets() {
        let state = State::new(&MockConfig::default()).unwrap();
        assert_eq!(state.record(Some("a"), request), 1);
        assert_eq!(state.record(Some("a"), request), 2);
        assert_eq!(state.record(None, request), 0);
        assert_eq!(state.record(Some("b"), request), 1);
        assert_eq!(
            (
                state.total(),
                state.hits("a"),
                state.hits("b"),
                state.hits("c")
            ),
            (4, 2, 1, 0)
        );
        assert_eq!(
            String::from_utf8(state.stats_json()).unwrap(),
            r#"{"total":4,"by_key":{"a":2,"b":1}}"#
        );
        assert_eq!(
            state.last_request("a").map(|r| r.path),
            Some("/v1/x".to_owned())
        );
        assert_eq!((state.next_n(), state.next_n()), (1, 2));
        state.reset();
        assert_eq!((state.total(), state.hits("a"), state.next_n()), (0, 0, 1));
        let stored = StoredResponse {
            n: 9,
            created: 1,
            model: "m".to_owned(),
            cancelled: false,
        };
        state.store_response(stored.clone());
        assert_eq!(state.response(9), Some(stored.clone()));
        assert_eq!(state.cancel_response(9).map(|r| r.cancelled), Some(true));
        assert_eq!(state.cancel_response(8), None);
        state.reset();
        assert_eq!(state.response(9), None);
        assert_eq!(state.draw(), &Step::Ok);
    }
}
