//! Table tests of the images and video-task functions, with exact bodies.

use super::*;

#[test]
fn images_answers() {
    let rows: [(&str, Kind, Option<&str>); 8] = [
        (
            r#"{"created": 1, "data": [{"url": "https://x/y.png", "revised_prompt": "a cat"}]}"#,
            Kind::Ok,
            None,
        ),
        (
            r#"{"created": 1, "data": [{"b64_json": "iVBOR"}]}"#,
            Kind::Ok,
            None,
        ),
        (r#"{"created": 1, "data": []}"#, Kind::EmptyData, None),
        (
            r#"{"created": 1, "data": [], "revised_prompt": "a friendly cat"}"#,
            Kind::EmptyData,
            Some("revised_prompt: a friendly cat"),
        ),
        (
            r#"{"created": 1, "data": null, "meta": [{"revised_prompt": "  "}, {"x": {"revised_prompt": "deep"}}]}"#,
            Kind::EmptyData,
            Some("revised_prompt: deep"),
        ),
        (r#"{"created": 1}"#, Kind::EmptyData, None),
        (
            r#"{"error": {"message": "blocked", "code": "content_policy_violation"}}"#,
            Kind::Ok,
            None,
        ),
        (
            "<html>502</html>",
            Kind::BadUpstreamResponse,
            Some("the body is not JSON: expected value at line 1 column 1"),
        ),
    ];
    for (body, kind, detail) in rows {
        let found = inspect_images(body.as_bytes());
        assert_eq!(
            (found.kind, found.detail.as_deref()),
            (kind, detail),
            "{body}"
        );
        assert!(found.finish_reasons.is_empty());
    }
    let found = inspect_images(br#"{"model": "gpt-image-1", "data": [{"b64_json": "x"}], "usage": {"input_tokens": 50, "output_tokens": 4160, "total_tokens": 4210}}"#);
    assert_eq!(found.model.as_deref(), Some("gpt-image-1"));
    assert_eq!(
        found.usage,
        Some(Usage {
            prompt_tokens: 50,
            completion_tokens: 4160
        })
    );
}

fn normalized(body: &str) -> (Option<String>, bool) {
    let verdict = normalize_video(body.as_bytes());
    let text = match verdict.body {
        VideoBody::Unchanged => None,
        VideoBody::Normalized(bytes) => Some(String::from_utf8(bytes.to_vec()).unwrap()),
    };
    (text, verdict.failed_without_detail)
}

#[test]
fn kling_succeed_becomes_succeeded_in_place() {
    let rows: [(&str, Option<&str>); 8] = [
        (
            r#"{"id": "t1", "status": "succeed", "progress": 100, "output": ["u"]}"#,
            Some(r#"{"id": "t1", "status": "succeeded","backstop_original_status":"succeed", "progress": 100, "output": ["u"]}"#),
        ),
        (
            r#"{"output":["u"],"status":"succeed"}"#,
            Some(r#"{"output":["u"],"status":"succeeded","backstop_original_status":"succeed"}"#),
        ),
        (
            r#"{"code":0,"message":"SUCCEED","data":{"task_id":"k1","task_status":"succeed","task_result":{"videos":[{"url":"v","status":"succeed"}]}}}"#,
            Some(r#"{"code":0,"message":"SUCCEED","data":{"task_id":"k1","task_status":"succeeded","backstop_original_status":"succeed","task_result":{"videos":[{"url":"v","status":"succeed"}]}}}"#),
        ),
        (
            "{\"data\" : {\"status\" :\n \"succeed\" } , \"note\": \"{\\\"status\\\":\\\"succeed\\\"}\"}",
            Some("{\"data\" : {\"status\" :\n \"succeeded\",\"backstop_original_status\":\"succeed\" } , \"note\": \"{\\\"status\\\":\\\"succeed\\\"}\"}"),
        ),
        (r#"{"id": "t1", "status": "succeeded", "output": ["u"]}"#, None),
        (r#"{"id": "t1", "status": "queued"}"#, None),
        (r#"{"st\u0061tus": "succeed"}"#, None),
        ("not json", None),
    ];
    for (body, expected) in rows {
        let (got, _) = normalized(body);
        assert_eq!(got.as_deref(), expected, "{body}");
        if let Some(out) = got {
            let value: Value = serde_json::from_str(&out).unwrap();
            assert!(value.is_object());
        }
    }
}

#[test]
fn failed_tasks_without_detail_are_flagged() {
    let rows = [
        (r#"{"id": "t", "status": "failed"}"#, true),
        (r#"{"id": "t", "status": "failed", "error": null}"#, true),
        (
            r#"{"id": "t", "status": "FAILED", "error": {"code": "", "message": " "}}"#,
            true,
        ),
        (
            r#"{"id": "t", "status": "failure", "fail_reason": ""}"#,
            true,
        ),
        (
            r#"{"id": "t", "status": "failed", "error": {"message": "moderation"}}"#,
            false,
        ),
        (
            r#"{"id": "t", "status": "failure", "fail_reason": "nsfw"}"#,
            false,
        ),
        (
            r#"{"code": 0, "message": "SUCCEED", "data": {"task_status": "failed", "task_status_msg": ""}}"#,
            true,
        ),
        (
            r#"{"code": 0, "message": "SUCCEED", "data": {"task_status": "failed", "task_status_msg": "risk control"}}"#,
            false,
        ),
        (r#"{"id": "t", "status": "in_progress"}"#, false),
        (r#"{"id": "t", "status": "succeed"}"#, false),
    ];
    for (body, expected) in rows {
        assert_eq!(normalized(body).1, expected, "{body}");
    }
}

#[test]
fn task_not_ready_answers() {
    let rows: [(u16, &str, bool); 9] = [
        (
            404,
            r#"{"code": "task_not_exist", "message": "task_not_exist", "data": null}"#,
            true,
        ),
        (
            400,
            r#"{"error": {"code": "task_not_exist", "message": "", "type": "comet_api_error"}}"#,
            true,
        ),
        (
            404,
            r#"{"code": "task_not_found", "message": "Task with id 'abc123' not found", "data": null}"#,
            true,
        ),
        (
            400,
            r#"{"error": {"code": "", "message": "Task not exist (request id: 1)"}}"#,
            true,
        ),
        (404, "task not exist", true),
        (
            404,
            r#"{"code": "model_not_found", "message": "model 'x' not found"}"#,
            false,
        ),
        (500, r#"{"code": "task_not_exist"}"#, false),
        (200, r#"{"code": "task_not_exist"}"#, false),
        (404, "<html>Not Found</html>", false),
    ];
    for (status, body, expected) in rows {
        assert_eq!(
            is_task_not_ready(&crate::classify::classify(
                http::StatusCode::from_u16(status).unwrap(),
                &http::HeaderMap::new(),
                body.as_bytes()
            )),
            expected,
            "{status} {body}"
        );
    }
}
