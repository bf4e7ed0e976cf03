//! Fault injection, latency, stats and reset, over real HTTP.

mod common;

use std::time::{Duration, Instant};

use batchata_emulator::{EmulatorConfig, EmulatorStats, Endpoint, FaultKind};
use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn fail_first_429_then_success_with_retry_headers() {
    let emu = start(EmulatorConfig::default().fail_first(
        Endpoint::AnthropicCreate,
        1,
        FaultKind::Status429 {
            retry_after_ms: 1500,
        },
    ))
    .await;
    let c = client();
    let body = json!({"requests": [req("a", params("x"))]});
    let (status, headers, err) = json_of(
        anth(&c, &emu, Method::POST, "/v1/messages/batches")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(headers["retry-after-ms"], "1500");
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["type"], "rate_limit_error");
    assert_eq!(
        err["request_id"].as_str(),
        headers.get("request-id").and_then(|v| v.to_str().ok())
    );
    // Other endpoints are not affected, and the next create goes through.
    let list = anth(&c, &emu, Method::GET, "/v1/messages/batches")
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    create_anthropic(&c, &emu, vec![req("a", params("x"))]).await;
    let stats = emu.stats();
    assert_eq!(stats.calls_to("anthropic.create"), 2);
    assert_eq!(stats.faults_of("429"), 1);
    assert_eq!(stats.faults_by_endpoint["anthropic.create"], 1);
    assert_eq!(stats.batches.len(), 1, "submitted exactly once");
}

#[tokio::test]
async fn openai_429_rate() {
    let emu = start(
        EmulatorConfig::default()
            .rate_limit_rate(1.0)
            .retry_after(Duration::from_millis(250)),
    )
    .await;
    let c = client();
    let (status, headers, err) =
        json_of(oai(&c, &emu, Method::GET, "/batches").send().await.unwrap()).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(headers["retry-after-ms"], "250");
    assert_eq!(err["error"]["code"], "rate_limit_exceeded");
    assert!(headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn server_error_kinds_per_provider() {
    let c = client();
    let cases = [
        (FaultKind::Status500, 500, "api_error", 500, "server_error"),
        (FaultKind::Status503, 503, "api_error", 503, "server_error"),
        (
            FaultKind::Status529,
            529,
            "overloaded_error",
            503,
            "server_error",
        ),
    ];
    for (fault, a_status, a_type, o_status, o_type) in cases {
        let emu = start(
            EmulatorConfig::default()
                .fail_first(Endpoint::AnthropicList, 1, fault)
                .fail_first(Endpoint::OpenAiBatchesList, 1, fault)
                .should_retry_header(Some(true)),
        )
        .await;
        let (status, headers, err) = json_of(
            anth(&c, &emu, Method::GET, "/v1/messages/batches")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, a_status, "{fault}");
        assert_eq!(err["error"]["type"], a_type, "{fault}");
        assert_eq!(headers["x-should-retry"], "true");
        let (status, _, err) =
            json_of(oai(&c, &emu, Method::GET, "/batches").send().await.unwrap()).await;
        assert_eq!(status, o_status, "{fault}");
        assert_eq!(err["error"]["type"], o_type, "{fault}");
        let stats = emu.stats();
        assert_eq!(stats.faults_of(fault.as_str()), 2);
        assert_eq!(stats.total_faults, 2);
    }
}

#[tokio::test]
async fn dropped_connections_are_transport_errors() {
    let emu = start(EmulatorConfig::default().fail_first_any(1, FaultKind::DropConnection)).await;
    let c = client();
    let err = oai(&c, &emu, Method::GET, "/batches")
        .send()
        .await
        .expect_err("the connection is dropped");
    assert!(err.is_request() && !err.is_timeout(), "{err:?}");
    assert!(!err.is_status(), "{err:?}");
    assert!(err.status().is_none());
    let ok = oai(&c, &emu, Method::GET, "/batches").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    // A dropped create never creates a batch.
    let emu = start(EmulatorConfig::default().fail_first(
        Endpoint::AnthropicCreate,
        2,
        FaultKind::DropConnection,
    ))
    .await;
    for _ in 0..2 {
        let r = anth(&c, &emu, Method::POST, "/v1/messages/batches")
            .json(&json!({"requests": [req("a", params("x"))]}))
            .send()
            .await;
        assert!(r.is_err());
    }
    create_anthropic(&c, &emu, vec![req("a", params("x"))]).await;
    let stats = emu.stats();
    assert_eq!(stats.faults_of("drop"), 2);
    assert_eq!(stats.batches.len(), 1);
}

/// Asserts that a call failed at the transport level: no HTTP status at all.
fn assert_dropped(r: Result<reqwest::Response, reqwest::Error>) {
    let err = r.expect_err("the connection is dropped");
    assert!(err.is_request() && !err.is_timeout(), "{err:?}");
    assert!(err.status().is_none(), "{err:?}");
}

#[tokio::test]
async fn drop_after_commits_the_anthropic_create_then_loses_the_answer() {
    let emu = start(EmulatorConfig::default().fail_first(
        Endpoint::AnthropicCreate,
        1,
        FaultKind::DropAfter,
    ))
    .await;
    let c = client();
    assert_dropped(
        anth(&c, &emu, Method::POST, "/v1/messages/batches")
            .json(&json!({"requests": [req("a", params("x"))]}))
            .send()
            .await,
    );
    // The batch exists although its creator never heard of it.
    let (status, _, list) = json_of(
        anth(&c, &emu, Method::GET, "/v1/messages/batches")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    let id = list["data"][0]["id"].as_str().unwrap().to_string();
    let b = get_anthropic(&c, &emu, &id).await;
    assert_eq!(b["id"], id.as_str());
    let stats = emu.stats();
    assert_eq!(stats.faults_of("drop-after"), 1);
    assert_eq!(stats.faults_by_endpoint["anthropic.create"], 1);
    assert_eq!(stats.batches.len(), 1);
    assert_eq!(stats.batches_created, 1);
    assert_eq!(stats.batches[0].id, id);
}

#[tokio::test]
async fn drop_after_commits_openai_uploads_and_creates() {
    let emu = start(
        EmulatorConfig::default()
            .fail_first(Endpoint::OpenAiFilesCreate, 1, FaultKind::DropAfter)
            .fail_first(Endpoint::OpenAiBatchesCreate, 1, FaultKind::DropAfter),
    )
    .await;
    let c = client();
    let content = jsonl(&[chat_line("o1", "hello")]);
    let form = reqwest::multipart::Form::new()
        .text("purpose", "batch")
        .part(
            "file",
            reqwest::multipart::Part::bytes(content.clone().into_bytes()).file_name("b.jsonl"),
        );
    assert_dropped(
        oai(&c, &emu, Method::POST, "/files")
            .multipart(form)
            .send()
            .await,
    );
    // The upload was stored: it is listed and its content can be read.
    let (status, _, files) =
        json_of(oai(&c, &emu, Method::GET, "/files").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(files["data"].as_array().unwrap().len(), 1, "{files}");
    let file_id = files["data"][0]["id"].clone();
    assert_eq!(file_lines(&c, &emu, &file_id).await.len(), 1);

    assert_dropped(
        oai(&c, &emu, Method::POST, "/batches")
            .json(&json!({
                "input_file_id": file_id,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            }))
            .send()
            .await,
    );
    let (status, _, list) =
        json_of(oai(&c, &emu, Method::GET, "/batches").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    let id = list["data"][0]["id"].as_str().unwrap().to_string();
    let b = wait_terminal(&c, &emu, &id).await;
    assert_eq!(b["status"], "completed", "{b}");
    assert_eq!(b["input_file_id"], file_id);
    let stats = emu.stats();
    assert_eq!(stats.faults_of("drop-after"), 2);
    assert_eq!(stats.faults_by_endpoint["openai.files.create"], 1);
    assert_eq!(stats.faults_by_endpoint["openai.batches.create"], 1);
    assert_eq!(stats.batches.len(), 1);
    assert_eq!(stats.batches_created, 1);
}

#[tokio::test]
async fn drop_after_works_on_any_endpoint() {
    let emu = start(
        EmulatorConfig::default()
            .processing_delay(Duration::from_secs(30))
            .fail_first(Endpoint::AnthropicCancel, 1, FaultKind::DropAfter)
            .fail_first(Endpoint::AnthropicRetrieve, 1, FaultKind::DropAfter),
    )
    .await;
    let c = client();
    let b = create_anthropic(&c, &emu, vec![req("a", params("x"))]).await;
    let id = b["id"].as_str().unwrap();
    assert_dropped(
        anth(&c, &emu, Method::GET, &format!("/v1/messages/batches/{id}"))
            .send()
            .await,
    );
    // The lost cancel still took effect.
    assert_dropped(
        anth(
            &c,
            &emu,
            Method::POST,
            &format!("/v1/messages/batches/{id}/cancel"),
        )
        .send()
        .await,
    );
    let b = get_anthropic(&c, &emu, id).await;
    assert!(b["cancel_initiated_at"].is_string(), "{b}");
    assert_eq!(emu.stats().faults_of("drop-after"), 2);
}

#[tokio::test]
async fn drop_after_sends_not_a_single_byte() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let emu = start(EmulatorConfig::default().fail_first(
        Endpoint::AnthropicList,
        1,
        FaultKind::DropAfter,
    ))
    .await;
    let mut sock = tokio::net::TcpStream::connect(emu.addr()).await.unwrap();
    sock.write_all(
        format!(
            "GET /v1/messages/batches HTTP/1.1\r\nhost: {}\r\nx-api-key: {KEY}\r\n\
             anthropic-version: 2023-06-01\r\n\r\n",
            emu.addr()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut got))
        .await
        .expect("the server closes the connection");
    assert!(read.is_err() || got.is_empty(), "{read:?}: {got:?}");
    assert_eq!(emu.stats().faults_of("drop-after"), 1);
}

#[tokio::test]
async fn drop_rate_applies_and_emulator_endpoints_are_never_faulted() {
    let emu = start(
        EmulatorConfig::default()
            .drop_rate(1.0)
            .server_error_rate(0.0),
    )
    .await;
    let c = client();
    assert!(anth(&c, &emu, Method::GET, "/v1/messages/batches")
        .send()
        .await
        .is_err());
    let stats: EmulatorStats = c
        .get(emu.stats_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats.faults_of("drop"), 1);
    assert_eq!(stats.calls_to("anthropic.list"), 1);
    let reset = c
        .post(format!("{}/_emulator/reset", emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(emu.stats(), EmulatorStats::default());
}

#[tokio::test]
async fn latency_slows_every_provider_call() {
    let emu = start(EmulatorConfig::default().latency(Duration::from_millis(300))).await;
    let c = client();
    let t = Instant::now();
    let r = oai(&c, &emu, Method::GET, "/batches").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    // Control endpoints are not delayed (generous bound).
    let t = Instant::now();
    c.get(emu.stats_url()).send().await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn random_faults_follow_the_seed() {
    let c = client();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let emu = start(EmulatorConfig::default().server_error_rate(0.5).seed(11)).await;
        let mut statuses = Vec::new();
        for _ in 0..20 {
            let r = oai(&c, &emu, Method::GET, "/batches").send().await.unwrap();
            statuses.push(r.status().as_u16());
        }
        assert!(
            statuses.contains(&500) && statuses.contains(&200),
            "{statuses:?}"
        );
        assert_eq!(
            emu.stats().faults_of("500"),
            statuses.iter().filter(|s| **s == 500).count() as u64
        );
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
}

#[tokio::test]
async fn stats_over_http_match_the_handle_and_reset_clears() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let b = create_anthropic(&c, &emu, vec![req("a", params("x")), req("b", params("y"))]).await;
    for _ in 0..3 {
        get_anthropic(&c, &emu, b["id"].as_str().unwrap()).await;
    }
    create_openai(&c, &emu, &[chat_line("o", "z")]).await;
    let over_http: EmulatorStats = c
        .get(emu.stats_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http, emu.stats());
    assert_eq!(over_http.calls_to("anthropic.retrieve"), 3);
    assert_eq!(over_http.calls_to("anthropic.create"), 1);
    assert_eq!(over_http.total_calls, 6);
    assert_eq!(over_http.batches.len(), 2);
    assert_eq!(over_http.batches_created, 2);
    assert_eq!(over_http.requests_resubmitted, 0);
    assert_eq!(over_http.batches[0].provider, "anthropic");
    assert_eq!(over_http.batches[0].request_count, 2);
    assert_eq!(over_http.batches[1].provider, "openai");
    assert!(chrono::DateTime::parse_from_rfc3339(&over_http.batches[1].created_at).is_ok());
    emu.reset();
    let after: EmulatorStats = c
        .get(emu.stats_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(after.batches.is_empty() && after.calls.is_empty());
    assert_eq!(after.batches_created, 0);
    let (status, _, _) = json_of(
        anth(
            &c,
            &emu,
            Method::GET,
            &format!("/v1/messages/batches/{}", b["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn resubmitted_requests_are_counted_per_provider() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    create_anthropic(&c, &emu, vec![req("a", params("x")), req("b", params("y"))]).await;
    let stats = emu.stats();
    assert_eq!(stats.requests_resubmitted, 0);
    // "a" again unchanged, "b" edited, "c" new, and "x" sent under another id.
    let second = create_anthropic(
        &c,
        &emu,
        vec![
            req("a", params("x")),
            req("b", params("y, edited")),
            req("c", params("z")),
            req("d", params("x")),
        ],
    )
    .await;
    let stats = emu.stats();
    assert_eq!(stats.requests_resubmitted, 1);
    assert_eq!(stats.batches[1].id, second["id"]);
    assert_eq!(stats.batches[1].resubmitted, 1);
    assert_eq!(stats.batches[0].resubmitted, 0);
    // The same request with its keys in another order is still the same.
    let reordered: serde_json::Value = serde_json::from_str(
        r#"{"requests": [{"params": {"messages": [{"content": "x", "role": "user"}],
            "max_tokens": 1024, "model": "claude-sonnet-4-5"}, "custom_id": "a"}]}"#,
    )
    .unwrap();
    let (status, _, _) = json_of(
        anth(&c, &emu, Method::POST, "/v1/messages/batches")
            .json(&reordered)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(emu.stats().requests_resubmitted, 2);

    // OpenAI keeps its own tally.
    create_openai(&c, &emu, &[chat_line("a", "x"), chat_line("o2", "y")]).await;
    assert_eq!(emu.stats().requests_resubmitted, 2);
    create_openai(&c, &emu, &[chat_line("a", "x"), chat_line("o2", "y!")]).await;
    // A batch that fails validation submits nothing.
    let dup = [chat_line("a", "x"), chat_line("a", "x")];
    let failed = create_openai(&c, &emu, &dup).await;
    let failed = wait_terminal(&c, &emu, failed["id"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "failed");
    let stats = emu.stats();
    assert_eq!(stats.requests_resubmitted, 3);
    let per_batch: Vec<u64> = stats.batches.iter().map(|b| b.resubmitted).collect();
    assert_eq!(per_batch, vec![0, 1, 1, 0, 1, 0]);
    assert_eq!(stats.batches_created, 6);
    emu.reset();
    create_anthropic(&c, &emu, vec![req("a", params("x"))]).await;
    assert_eq!(emu.stats().requests_resubmitted, 0);
}

#[tokio::test]
async fn unknown_methods_get_envelopes() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let (status, _, err) =
        json_of(oai(&c, &emu, Method::PUT, "/batches").send().await.unwrap()).await;
    assert_eq!(status, 405);
    assert!(err["error"]["message"].is_string());
    let (status, _, err) = json_of(
        oai(&c, &emu, Method::GET, "/nothing/here")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert_eq!(emu.stats().calls_to("unknown"), 2);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let emu = start(EmulatorConfig::default()).await;
    let url = emu.stats_url();
    let c = client();
    assert!(c.get(&url).send().await.is_ok());
    emu.shutdown().await;
    let fresh = client();
    assert!(fresh.get(&url).send().await.is_err());
}
