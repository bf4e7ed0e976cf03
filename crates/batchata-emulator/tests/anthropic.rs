//! HTTP-level tests of the emulated Anthropic Message Batches API.

mod common;

use std::time::Duration;

use batchata_emulator::EmulatorConfig;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

fn is_rfc3339(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

#[tokio::test]
async fn create_poll_and_fetch_results_with_param_errors() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let mut no_max = params("x");
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let mut zero_max = params("x");
    zero_max["max_tokens"] = json!(0);
    let mut empty = params("x");
    empty["messages"] = json!([]);
    let mut bad_block = params("x");
    bad_block["messages"] = json!([{"role": "user", "content": [{"type": "video", "url": "x"}]}]);
    let requests = vec![
        req("ok-1", params("What is the capital of France?")),
        req("ok-2", params("Say hi")),
        req("no-max", no_max),
        req("zero-max", zero_max),
        req("empty", empty),
        req("bad-block", bad_block),
    ];
    let created = create_anthropic(&c, &emu, requests).await;
    assert_eq!(created["type"], "message_batch");
    assert_eq!(created["processing_status"], "in_progress");
    assert_eq!(
        created["request_counts"],
        json!({"processing": 6, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0})
    );
    assert!(created["results_url"].is_null() && created["ended_at"].is_null());
    assert!(created["id"].as_str().unwrap().starts_with("msgbatch_"));
    assert!(is_rfc3339(&created["created_at"]) && is_rfc3339(&created["expires_at"]));

    let id = created["id"].as_str().unwrap();
    let ended = get_anthropic(&c, &emu, id).await;
    assert_eq!(ended["processing_status"], "ended");
    assert_eq!(
        ended["request_counts"],
        json!({"processing": 0, "succeeded": 2, "errored": 4, "canceled": 0, "expired": 0})
    );
    assert!(is_rfc3339(&ended["ended_at"]));
    assert_eq!(
        ended["results_url"],
        format!(
            "{}/v1/messages/batches/{id}/results",
            emu.anthropic_base_url()
        )
    );

    let lines = results(&c, &ended).await;
    assert_eq!(lines.len(), 6);
    let by_id = |cid: &str| {
        lines
            .iter()
            .find(|l| l["custom_id"] == cid)
            .unwrap_or_else(|| panic!("{cid} missing"))["result"]
            .clone()
    };
    let ok = by_id("ok-1");
    assert_eq!(ok["type"], "succeeded");
    let msg = &ok["message"];
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["role"], "assistant");
    assert_eq!(msg["model"], "claude-sonnet-4-5");
    assert_eq!(msg["stop_reason"], "end_turn");
    assert!(msg["id"].as_str().unwrap().starts_with("msg_"));
    let text = msg["content"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("Echo: What is the capital of France? #"),
        "{text}"
    );
    let usage = &msg["usage"];
    let params_len = serde_json::to_string(&params("What is the capital of France?"))
        .unwrap()
        .len() as u64;
    assert_eq!(usage["input_tokens"], params_len.div_ceil(4));
    assert_eq!(usage["output_tokens"], (text.len() as u64).div_ceil(4));
    assert_eq!(usage["cache_read_input_tokens"], 0);

    for (cid, needle) in [
        ("no-max", "max_tokens: Field required"),
        ("zero-max", "max_tokens"),
        ("empty", "at least one message"),
        ("bad-block", "'video'"),
    ] {
        let r = by_id(cid);
        assert_eq!(r["type"], "errored", "{cid}");
        assert_eq!(r["error"]["type"], "error");
        assert_eq!(r["error"]["error"]["type"], "invalid_request_error");
        let m = r["error"]["error"]["message"].as_str().unwrap();
        assert!(m.contains(needle), "{cid}: {m}");
    }
    let stats = emu.stats();
    assert_eq!(stats.calls_to("anthropic.create"), 1);
    assert_eq!(stats.calls_to("anthropic.retrieve"), 1);
    assert_eq!(stats.calls_to("anthropic.results"), 1);
    assert_eq!(stats.batches.len(), 1);
    assert_eq!(stats.batches[0].request_count, 6);
    assert_eq!(stats.batches[0].status, "ended");
}

#[tokio::test]
async fn results_are_shuffled_deterministically_or_in_order() {
    let c = client();
    let requests: Vec<Value> = (0..30)
        .map(|i| req(&format!("r{i}"), params(&format!("q{i}"))))
        .collect();
    let order = |lines: &[Value]| -> Vec<String> {
        lines
            .iter()
            .map(|l| l["custom_id"].as_str().unwrap().to_string())
            .collect()
    };
    let emu = start(EmulatorConfig::default().seed(9)).await;
    let b = create_anthropic(&c, &emu, requests.clone()).await;
    let b = wait_ended(&c, &emu, b["id"].as_str().unwrap()).await;
    let first = order(&results(&c, &b).await);
    let again = order(&results(&c, &b).await);
    assert_eq!(first, again);
    let in_order: Vec<String> = (0..30).map(|i| format!("r{i}")).collect();
    assert_ne!(first, in_order);

    let emu = start(EmulatorConfig::default().shuffle_results(false)).await;
    let b = create_anthropic(&c, &emu, requests).await;
    let b = wait_ended(&c, &emu, b["id"].as_str().unwrap()).await;
    assert_eq!(order(&results(&c, &b).await), in_order);
}

#[tokio::test]
async fn list_pages_with_after_and_before() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let mut ids = Vec::new();
    for i in 0..5 {
        let b = create_anthropic(&c, &emu, vec![req("a", params(&format!("{i}")))]).await;
        ids.push(b["id"].as_str().unwrap().to_string());
    }
    ids.reverse(); // newest first
    let list = |q: String| {
        let c = c.clone();
        let url = format!("/v1/messages/batches{q}");
        let rb = anth(&c, &emu, Method::GET, &url);
        async move { json_of(rb.send().await.unwrap()).await.2 }
    };
    let page_ids = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect()
    };
    let p1 = list("?limit=2".into()).await;
    assert_eq!(page_ids(&p1), ids[0..2]);
    assert_eq!(p1["has_more"], true);
    assert_eq!(p1["first_id"], ids[0].as_str());
    assert_eq!(p1["last_id"], ids[1].as_str());
    let p2 = list(format!("?limit=2&after_id={}", ids[1])).await;
    assert_eq!(page_ids(&p2), ids[2..4]);
    assert_eq!(p2["has_more"], true);
    let p3 = list(format!("?limit=2&after_id={}", ids[3])).await;
    assert_eq!(page_ids(&p3), ids[4..5]);
    assert_eq!(p3["has_more"], false);
    let back = list(format!("?limit=2&before_id={}", ids[4])).await;
    assert_eq!(page_ids(&back), ids[2..4]);
    assert_eq!(back["has_more"], true);
    let back2 = list(format!("?limit=2&before_id={}", ids[2])).await;
    assert_eq!(page_ids(&back2), ids[0..2]);
    assert_eq!(back2["has_more"], false);
    let all = list(String::new()).await;
    assert_eq!(page_ids(&all), ids);
    assert_eq!(all["has_more"], false);
    let (status, _, bad) = json_of(
        anth(&c, &emu, Method::GET, "/v1/messages/batches?limit=0")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(bad["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn cancel_ends_with_canceled_requests() {
    let emu = start(EmulatorConfig::default().processing_delay(Duration::from_secs(60))).await;
    let c = client();
    let reqs: Vec<Value> = (0..5).map(|i| req(&format!("c{i}"), params("x"))).collect();
    let b = create_anthropic(&c, &emu, reqs).await;
    let id = b["id"].as_str().unwrap();
    assert_eq!(
        get_anthropic(&c, &emu, id).await["processing_status"],
        "in_progress"
    );
    let (status, _, canceling) = json_of(
        anth(
            &c,
            &emu,
            Method::POST,
            &format!("/v1/messages/batches/{id}/cancel"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(canceling["processing_status"], "canceling");
    assert_eq!(canceling["request_counts"]["processing"], 5);
    assert!(is_rfc3339(&canceling["cancel_initiated_at"]));
    let ended = wait_ended(&c, &emu, id).await;
    let counts = &ended["request_counts"];
    assert_eq!(
        counts["canceled"].as_u64().unwrap() + counts["succeeded"].as_u64().unwrap(),
        5
    );
    assert!(counts["canceled"].as_u64().unwrap() >= 4, "{counts}");
    let lines = results(&c, &ended).await;
    assert!(lines.iter().any(|l| l["result"]["type"] == "canceled"));
    // An ended batch can no longer be canceled.
    let (status, _, err) = json_of(
        anth(
            &c,
            &emu,
            Method::POST,
            &format!("/v1/messages/batches/{id}/cancel"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["type"], "error");
}

#[tokio::test]
async fn cancel_delay_keeps_canceling_visible() {
    let emu = start(
        EmulatorConfig::default()
            .processing_delay(Duration::from_secs(60))
            .cancel_delay(Duration::from_millis(1500)),
    )
    .await;
    let c = client();
    let b = create_anthropic(&c, &emu, vec![req("a", params("x"))]).await;
    let id = b["id"].as_str().unwrap();
    anth(
        &c,
        &emu,
        Method::POST,
        &format!("/v1/messages/batches/{id}/cancel"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        get_anthropic(&c, &emu, id).await["processing_status"],
        "canceling"
    );
    let ended = wait_ended(&c, &emu, id).await;
    assert!(!ended["cancel_initiated_at"].is_null());
}

#[tokio::test]
async fn progressive_completion_splits_on_cancel() {
    let emu = start(EmulatorConfig::default().processing_delay(Duration::from_secs(4))).await;
    let c = client();
    let reqs: Vec<Value> = (0..40)
        .map(|i| req(&format!("p{i}"), params("x")))
        .collect();
    let b = create_anthropic(&c, &emu, reqs).await;
    let id = b["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    anth(
        &c,
        &emu,
        Method::POST,
        &format!("/v1/messages/batches/{id}/cancel"),
    )
    .send()
    .await
    .unwrap();
    let ended = wait_ended(&c, &emu, id).await;
    let succeeded = ended["request_counts"]["succeeded"].as_u64().unwrap();
    let canceled = ended["request_counts"]["canceled"].as_u64().unwrap();
    assert_eq!(succeeded + canceled, 40);
    assert!(succeeded > 0 && canceled > 0, "{ended}");
    let lines = results(&c, &ended).await;
    let n_ok = lines
        .iter()
        .filter(|l| l["result"]["type"] == "succeeded")
        .count() as u64;
    assert_eq!(n_ok, succeeded);
}

#[tokio::test]
async fn expiring_batches_keep_finished_requests() {
    let emu = start(EmulatorConfig::default().expire_all()).await;
    let c = client();
    let reqs: Vec<Value> = (0..40)
        .map(|i| req(&format!("e{i}"), params("x")))
        .collect();
    let b = create_anthropic(&c, &emu, reqs).await;
    let ended = wait_ended(&c, &emu, b["id"].as_str().unwrap()).await;
    let counts = &ended["request_counts"];
    let expired = counts["expired"].as_u64().unwrap();
    let succeeded = counts["succeeded"].as_u64().unwrap();
    assert_eq!(expired + succeeded, 40);
    assert!(expired > 0 && succeeded > 0, "{counts}");
    let lines = results(&c, &ended).await;
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["result"] == json!({"type": "expired"}))
            .count() as u64,
        expired
    );
}

#[tokio::test]
async fn delete_only_after_end_and_then_404() {
    let emu = start(EmulatorConfig::default().processing_delay(Duration::from_secs(60))).await;
    let c = client();
    let b = create_anthropic(&c, &emu, vec![req("a", params("x"))]).await;
    let id = b["id"].as_str().unwrap();
    let (status, _, err) = json_of(
        anth(
            &c,
            &emu,
            Method::DELETE,
            &format!("/v1/messages/batches/{id}"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["type"], "invalid_request_error");
    // Results are not available before the end either.
    let (status, _, _) = json_of(
        anth(
            &c,
            &emu,
            Method::GET,
            &format!("/v1/messages/batches/{id}/results"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 400);

    let emu = start(EmulatorConfig::default()).await;
    let b = create_anthropic(&c, &emu, vec![req("a", params("x"))]).await;
    let id = b["id"].as_str().unwrap();
    wait_ended(&c, &emu, id).await;
    let (status, _, deleted) = json_of(
        anth(
            &c,
            &emu,
            Method::DELETE,
            &format!("/v1/messages/batches/{id}"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(deleted, json!({"id": id, "type": "message_batch_deleted"}));
    let (status, headers, err) = json_of(
        anth(&c, &emu, Method::GET, &format!("/v1/messages/batches/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["type"], "not_found_error");
    assert_eq!(
        err["request_id"].as_str(),
        headers.get("request-id").and_then(|h| h.to_str().ok())
    );
    assert!(emu.stats().batches[0].deleted);
}

#[tokio::test]
async fn not_found_for_unknown_batches_and_routes() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    for path in [
        "/v1/messages/batches/msgbatch_nope",
        "/v1/messages/batches/msgbatch_nope/results",
        "/v1/messages/nothing",
    ] {
        let (status, _, err) =
            json_of(anth(&c, &emu, Method::GET, path).send().await.unwrap()).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(err["error"]["type"], "not_found_error", "{path}");
    }
}

#[tokio::test]
async fn auth_and_version_are_checked() {
    let emu = start(EmulatorConfig::default().api_key(KEY)).await;
    let c = client();
    let url = format!("{}/v1/messages/batches", emu.anthropic_base_url());
    let (status, headers, err) = json_of(
        c.get(&url)
            .header("anthropic-version", "2023-06-01")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(err["error"]["type"], "authentication_error");
    assert!(headers.contains_key("request-id"));
    let (status, _, err) = json_of(
        c.get(&url)
            .header("x-api-key", "wrong")
            .header("anthropic-version", "2023-06-01")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(err["error"]["type"], "authentication_error");
    let (status, _, err) =
        json_of(c.get(&url).header("x-api-key", KEY).send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anthropic-version"));
    let ok = anth(&c, &emu, Method::GET, "/v1/messages/batches")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // Newer dated versions (as sent by current SDKs) are accepted; garbage is not.
    for (version, expected) in [("2026-10-21", 200), ("latest", 400)] {
        let resp = c
            .get(&url)
            .header("x-api-key", KEY)
            .header("anthropic-version", version)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), expected, "{version}");
    }
    // Without a configured key any non-empty key works.
    let open = start(EmulatorConfig::default()).await;
    let resp = c
        .get(format!("{}/v1/messages/batches", open.anthropic_base_url()))
        .header("x-api-key", "anything")
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn limits_give_413_and_bad_bodies_400() {
    let emu = start(EmulatorConfig::default().anthropic_limits(2, 2000)).await;
    let c = client();
    let three: Vec<Value> = (0..3).map(|i| req(&format!("l{i}"), params("x"))).collect();
    let (status, _, err) = json_of(
        anth(&c, &emu, Method::POST, "/v1/messages/batches")
            .json(&json!({"requests": three}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(err["error"]["type"], "request_too_large");
    let big = "y".repeat(5000);
    let (status, _, err) = json_of(
        anth(&c, &emu, Method::POST, "/v1/messages/batches")
            .json(&json!({"requests": [req("big", params(&big))]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(err["error"]["type"], "request_too_large");

    for (body, needle) in [
        ("{not json".to_string(), "not a valid"),
        (json!({"requests": []}).to_string(), "at least 1"),
        (
            json!({"requests": [req("dup", params("a")), req("dup", params("b"))]}).to_string(),
            "Duplicate",
        ),
        (
            json!({"requests": [req("bad id!", params("a"))]}).to_string(),
            "custom_id",
        ),
    ] {
        let (status, _, err) = json_of(
            anth(&c, &emu, Method::POST, "/v1/messages/batches")
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(err["error"]["type"], "invalid_request_error");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(needle),
            "{err}"
        );
    }
    assert!(emu.stats().batches.is_empty());
}

#[tokio::test]
async fn error_rate_errors_requests_deterministically() {
    let c = client();
    let reqs: Vec<Value> = (0..40)
        .map(|i| req(&format!("x{i}"), params("x")))
        .collect();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let emu = start(EmulatorConfig::default().error_rate(0.5).seed(42)).await;
        let b = create_anthropic(&c, &emu, reqs.clone()).await;
        let b = wait_ended(&c, &emu, b["id"].as_str().unwrap()).await;
        let mut errored: Vec<String> = results(&c, &b)
            .await
            .into_iter()
            .filter(|l| l["result"]["type"] == "errored")
            .map(|l| {
                assert_eq!(l["result"]["error"]["error"]["type"], "api_error");
                l["custom_id"].as_str().unwrap().to_string()
            })
            .collect();
        errored.sort();
        assert!(!errored.is_empty() && errored.len() < 40);
        assert_eq!(b["request_counts"]["errored"], errored.len() as u64);
        seen.push(errored);
    }
    assert_eq!(seen[0], seen[1]);
}
