//! Throughput check with benchmark-sized batches (100,000 requests each).
//! Ignored by default; run with
//! `cargo test -p batchata-emulator --release --test perf -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use batchata_emulator::EmulatorConfig;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const N: usize = 100_000;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a throughput measurement, not a check: run with --ignored on a quiet machine"]
async fn hundred_thousand_requests_per_provider() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client_long();
    let filler = "lorem ipsum dolor sit amet ".repeat(35); // ~1 KB per request
    let requests: Vec<Value> = (0..N)
        .map(|i| {
            req(
                &format!("req-{i}"),
                params(&format!("{filler} question {i}")),
            )
        })
        .collect();
    let body = serde_json::to_vec(&json!({ "requests": requests })).unwrap();
    println!("anthropic body: {} MB", body.len() / 1_000_000);
    let t = Instant::now();
    let resp = anth(&c, &emu, Method::POST, "/v1/messages/batches")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let b: Value = resp.json().await.unwrap();
    println!("anthropic create: {:?}", t.elapsed());
    let t = Instant::now();
    let b = get_anthropic(&c, &emu, b["id"].as_str().unwrap()).await;
    println!("anthropic retrieve: {:?}", t.elapsed());
    let t = Instant::now();
    let text = c
        .get(b["results_url"].as_str().unwrap())
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text.lines().count(), N);
    println!(
        "anthropic results: {:?} ({} MB)",
        t.elapsed(),
        text.len() / 1_000_000
    );

    // OpenAI caps a batch at 50,000 lines; use two files' worth of text in one.
    let lines: String = (0..N / 2)
        .map(|i| {
            format!(
                "{}\n",
                chat_line(
                    &format!("req-{i}"),
                    &format!("{filler}{filler} question {i}")
                )
            )
        })
        .collect();
    println!("openai file: {} MB", lines.len() / 1_000_000);
    let t = Instant::now();
    let file = upload(&c, &emu, &lines).await;
    println!("openai upload: {:?}", t.elapsed());
    let t = Instant::now();
    let (status, _, batch) = json_of(
        oai(&c, &emu, Method::POST, "/batches")
            .json(&json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    println!("openai create: {:?}", t.elapsed());
    let t = Instant::now();
    let done = get_openai(&c, &emu, batch["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{}", done["errors"]);
    println!("openai first retrieve (builds output): {:?}", t.elapsed());
    let t = Instant::now();
    let out = oai(
        &c,
        &emu,
        Method::GET,
        &format!(
            "/files/{}/content",
            done["output_file_id"].as_str().unwrap()
        ),
    )
    .send()
    .await
    .unwrap()
    .bytes()
    .await
    .unwrap();
    println!(
        "openai output download: {:?} ({} MB)",
        t.elapsed(),
        out.len() / 1_000_000
    );
}

fn client_long() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(300))
        .build()
        .unwrap()
}
