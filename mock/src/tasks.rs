//! Media routes: image generations (with `empty_data`), audio
//! transcriptions (with `empty` and `blank`), and video tasks — submitted `queued`, polled `queued`
//! then `succeed` (Kling's spelling), or `failed` without detail, or 404
//! `task_not_exist` on early polls (Runway).

use serde_json::{json, Value};

use super::request::Ctx;
use super::state::Phase;

/// Where every finished video lives.
pub const VIDEO_URL: &str = "https://example.invalid/video.mp4";

fn to_string(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// `/v1/images/generations`: one image per `"n"`, or none (`empty_data`).
pub fn images(ctx: &Ctx<'_>, empty: bool) -> String {
    if empty {
        return to_string(&json!({"created": ctx.created, "data": []}));
    }
    let prompt = ctx
        .fields
        .prompt
        .as_ref()
        .and_then(Value::as_str)
        .unwrap_or_default();
    let data: Vec<Value> = (0..ctx.choices)
        .map(|i| json!({"url": format!("https://example.invalid/image-{}-{i}.png", ctx.n), "revised_prompt": prompt}))
        .collect();
    to_string(&json!({"created": ctx.created, "data": data}))
}

/// `/v1/audio/transcriptions`: reports the size of what it got, or says
/// `text` instead (`empty`: `""`, `blank`: `"   "`).
pub fn transcription(body_len: usize, text: Option<&str>) -> String {
    match text {
        Some(text) => to_string(&json!({ "text": text })),
        None => to_string(&json!({"text": format!("transcribed {body_len} bytes")})),
    }
}

/// The id of the video task submitted by request `n`.
pub fn video_id(n: u64) -> String {
    format!("video-{n}")
}

/// A video task's state in one poll (or at submission: `queued`).
pub fn video(id: &str, model: &str, created: u64, status: VideoStatus) -> String {
    let mut v = json!({"id": id, "object": "video", "model": model, "status": status.as_str(), "progress": 0, "created_at": created});
    if status == VideoStatus::Succeed {
        v["progress"] = json!(100);
        v["output"] = json!([VIDEO_URL]);
    }
    to_string(&v)
}

/// The statuses the mock reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoStatus {
    /// `queued`, progress 0.
    Queued,
    /// `succeed`, progress 100, with `output`.
    Succeed,
    /// `failed`, without any error detail.
    Failed,
}

impl VideoStatus {
    fn as_str(self) -> &'static str {
        match self {
            VideoStatus::Queued => "queued",
            VideoStatus::Succeed => "succeed",
            VideoStatus::Failed => "failed",
        }
    }

    /// The status a poll phase reports (`None`: the task does not exist yet).
    pub fn of(phase: Phase) -> Option<VideoStatus> {
        match phase {
            Phase::Missing => None,
            Phase::Queued => Some(VideoStatus::Queued),
            Phase::Succeed => Some(VideoStatus::Succeed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::tests::ctx;
    use crate::request::Fields;

    #[test]
    fn video_bodies() {
        assert_eq!(
            video("video-3", "kling", 9, VideoStatus::Queued),
            r#"{"created_at":9,"id":"video-3","model":"kling","object":"video","progress":0,"status":"queued"}"#
        );
        assert_eq!(
            video("video-3", "kling", 9, VideoStatus::Succeed),
            r#"{"created_at":9,"id":"video-3","model":"kling","object":"video","output":["https://example.invalid/video.mp4"],"progress":100,"status":"succeed"}"#
        );
        assert_eq!(
            video("video-3", "kling", 9, VideoStatus::Failed),
            r#"{"created_at":9,"id":"video-3","model":"kling","object":"video","progress":0,"status":"failed"}"#
        );
        assert_eq!(VideoStatus::of(Phase::Missing), None);
    }

    #[test]
    fn image_bodies() {
        let fields = Fields {
            prompt: Some(json!("a cat")),
            ..Fields::default()
        };
        let c = ctx(&fields, false, 2, false);
        assert_eq!(
            images(&c, false),
            r#"{"created":1700000000,"data":[{"revised_prompt":"a cat","url":"https://example.invalid/image-7-0.png"},{"revised_prompt":"a cat","url":"https://example.invalid/image-7-1.png"}]}"#
        );
        assert_eq!(images(&c, true), r#"{"created":1700000000,"data":[]}"#);
        assert_eq!(
            transcription(12, None),
            r#"{"text":"transcribed 12 bytes"}"#
        );
        assert_eq!(transcription(12, Some("")), r#"{"text":""}"#);
    }
}
