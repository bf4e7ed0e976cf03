//! Requests a provider refuses for what they hold (the `reject` marker),
//! in each provider's own shape, over real HTTP.

mod common;

use base64::Engine as _;
use batchata_emulator::{EmulatorConfig, REJECT_MARKER};
use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn anthropic_refuses_the_create_naming_the_request() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let pdf = base64::engine::general_purpose::STANDARD
        .encode(format!("%PDF-1.4\n{REJECT_MARKER}\n%%EOF"));
    let mut requests: Vec<_> = (0..4)
        .map(|i| req(&format!("r{i}"), params("hi")))
        .collect();
    requests[3] = req(
        "r3",
        json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}},
            {"type": "text", "text": "Summarise."}
        ]}]}),
    );
    let (status, headers, err) = json_of(
        anth(&c, &emu, Method::POST, "/v1/messages/batches")
            .json(&json!({ "requests": requests }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert!(headers.contains_key("request-id"));
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert_eq!(
        err["error"]["message"],
        "requests.3.params.messages.0.content.0.document: The PDF specified was not valid."
    );
    // Nothing was created, nothing counts as submitted.
    let stats = emu.stats();
    assert_eq!(stats.batches_created, 0);
    assert_eq!(stats.requests_resubmitted, 0);
    // The same requests without the bad one go through.
    requests.pop();
    create_anthropic(&c, &emu, requests).await;
    assert_eq!(emu.stats().batches_created, 1);
    assert_eq!(emu.stats().requests_resubmitted, 0);
}

#[tokio::test]
async fn openai_fails_the_batch_in_validation_with_the_bad_lines() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let mut lines: Vec<_> = (0..5).map(|i| chat_line(&format!("r{i}"), "hi")).collect();
    lines[1] = chat_line("r1", &format!("text with {REJECT_MARKER} inside"));
    lines[4] = chat_line("r4", REJECT_MARKER);
    let b = create_openai(&c, &emu, &lines).await;
    assert_eq!(b["status"], "validating");
    let b = wait_terminal(&c, &emu, b["id"].as_str().unwrap()).await;
    assert_eq!(b["status"], "failed", "{b}");
    assert!(b["failed_at"].is_i64());
    let errors = b["errors"]["data"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{b}");
    assert_eq!(errors[0]["line"], 2);
    assert_eq!(errors[1]["line"], 5);
    for e in errors {
        assert_eq!(e["code"], "invalid_request");
        assert_eq!(e["param"], "body.messages.1.content");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("could not be processed"),
            "{e}"
        );
    }
    assert!(b["output_file_id"].is_null());
    // The failed batch exists (it counts as created) but submitted nothing.
    let stats = emu.stats();
    assert_eq!(stats.batches_created, 1);
    assert_eq!(stats.requests_resubmitted, 0);
    let good: Vec<_> = [0, 2, 3].iter().map(|&i| lines[i].clone()).collect();
    let b = create_openai(&c, &emu, &good).await;
    let b = wait_terminal(&c, &emu, b["id"].as_str().unwrap()).await;
    assert_eq!(b["status"], "completed", "{b}");
    assert_eq!(emu.stats().requests_resubmitted, 0);
}

#[tokio::test]
async fn gemini_refuses_an_inline_create_naming_the_request() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let mut requests: Vec<_> = (0..3)
        .map(|i| inline(&format!("k{i}"), gen_request("hi")))
        .collect();
    requests[2] = inline("k2", gen_request(&format!("see {REJECT_MARKER}")));
    let (status, _, err) = json_of(
        gem(
            &c,
            &emu,
            Method::POST,
            "/v1beta/models/gemini-2.5-flash:batchGenerateContent",
        )
        .json(&json!({"batch": {"displayName": "t", "inputConfig": {"requests": {"requests": requests}}}}))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(err["error"]["code"], 400);
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("batch.input_config.requests.requests[2].request.contents.0.parts.0"),
        "{msg}"
    );
    assert_eq!(emu.stats().batches_created, 0);
    requests.pop();
    create_gemini(&c, &emu, "gemini-2.5-flash", requests).await;
    assert_eq!(emu.stats().batches_created, 1);
}
