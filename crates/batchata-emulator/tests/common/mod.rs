//! Shared helpers for the emulator's HTTP-level tests: a client with the
//! right headers per provider, request builders, and a tiny PDF writer.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use batchata_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{json, Value};

pub const KEY: &str = "test-key";

pub async fn start(config: EmulatorConfig) -> EmulatorHandle {
    Emulator::start(config).await.expect("emulator starts")
}

pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// An Anthropic request with key and version headers; `path` starts with `/v1`.
pub fn anth(c: &Client, emu: &EmulatorHandle, method: Method, path: &str) -> RequestBuilder {
    c.request(method, format!("{}{path}", emu.anthropic_base_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
}

/// An OpenAI request with a bearer key; `path` is relative to `/v1`.
pub fn oai(c: &Client, emu: &EmulatorHandle, method: Method, path: &str) -> RequestBuilder {
    c.request(method, format!("{}{path}", emu.openai_base_url()))
        .bearer_auth(KEY)
}

pub async fn json_of(resp: Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, headers, v)
}

pub fn params(text: &str) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": text}],
    })
}

pub fn req(custom_id: &str, params: Value) -> Value {
    json!({"custom_id": custom_id, "params": params})
}

/// Creates an Anthropic batch and returns the batch object.
pub async fn create_anthropic(c: &Client, emu: &EmulatorHandle, requests: Vec<Value>) -> Value {
    let (status, headers, v) = json_of(
        anth(c, emu, Method::POST, "/v1/messages/batches")
            .json(&json!({"requests": requests}))
            .send()
            .await
            .expect("create"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(headers.contains_key("request-id"));
    v
}

pub async fn get_anthropic(c: &Client, emu: &EmulatorHandle, id: &str) -> Value {
    let (status, _, v) = json_of(
        anth(c, emu, Method::GET, &format!("/v1/messages/batches/{id}"))
            .send()
            .await
            .expect("retrieve"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v
}

/// Polls until `processing_status` is `ended` (10 s at most).
pub async fn wait_ended(c: &Client, emu: &EmulatorHandle, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let b = get_anthropic(c, emu, id).await;
        if b["processing_status"] == "ended" {
            return b;
        }
        assert!(Instant::now() < deadline, "batch {id} did not end: {b}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Downloads and parses the JSONL at the batch's `results_url`.
pub async fn results(c: &Client, batch: &Value) -> Vec<Value> {
    let url = batch["results_url"].as_str().expect("results_url");
    let resp = c
        .get(url)
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .expect("results");
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("body");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// Runs one Anthropic request through a batch and returns its result.
pub async fn run_one(c: &Client, emu: &EmulatorHandle, params: Value) -> Value {
    let b = create_anthropic(c, emu, vec![req("only", params)]).await;
    let b = wait_ended(c, emu, b["id"].as_str().unwrap()).await;
    let mut lines = results(c, &b).await;
    assert_eq!(lines.len(), 1);
    lines.remove(0)["result"].clone()
}

pub fn chat_line(custom_id: &str, text: &str) -> Value {
    json!({
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-5-mini", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": text}
        ]},
    })
}

pub fn jsonl(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Uploads `content` with purpose `batch`; returns the file object.
pub async fn upload(c: &Client, emu: &EmulatorHandle, content: &str) -> Value {
    let form = reqwest::multipart::Form::new()
        .text("purpose", "batch")
        .part(
            "file",
            reqwest::multipart::Part::bytes(content.as_bytes().to_vec()).file_name("batch.jsonl"),
        );
    let (status, _, v) = json_of(
        oai(c, emu, Method::POST, "/files")
            .multipart(form)
            .send()
            .await
            .expect("upload"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v
}

/// Uploads the lines and creates a batch; returns the batch object.
pub async fn create_openai(c: &Client, emu: &EmulatorHandle, lines: &[Value]) -> Value {
    let file = upload(c, emu, &jsonl(lines)).await;
    let (status, headers, v) = json_of(
        oai(c, emu, Method::POST, "/batches")
            .json(&json!({
                "input_file_id": file["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
                "metadata": {"job": "test"},
            }))
            .send()
            .await
            .expect("create"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(headers.contains_key("x-request-id"));
    v
}

pub async fn get_openai(c: &Client, emu: &EmulatorHandle, id: &str) -> Value {
    let (status, _, v) = json_of(
        oai(c, emu, Method::GET, &format!("/batches/{id}"))
            .send()
            .await
            .expect("retrieve"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v
}

/// Polls until the batch is in a terminal status (10 s at most).
pub async fn wait_terminal(c: &Client, emu: &EmulatorHandle, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let b = get_openai(c, emu, id).await;
        if matches!(
            b["status"].as_str(),
            Some("completed" | "failed" | "expired" | "cancelled")
        ) {
            return b;
        }
        assert!(Instant::now() < deadline, "batch {id} did not finish: {b}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Downloads a file's content as JSON lines.
pub async fn file_lines(c: &Client, emu: &EmulatorHandle, file_id: &Value) -> Vec<Value> {
    let id = file_id.as_str().expect("file id");
    let resp = oai(c, emu, Method::GET, &format!("/files/{id}/content"))
        .send()
        .await
        .expect("content");
    assert_eq!(resp.status(), 200);
    resp.text()
        .await
        .expect("body")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// A minimal uncompressed PDF, one page per entry, one `Tj` per line.
pub fn build_pdf(pages: &[&[&str]]) -> Vec<u8> {
    let n = pages.len();
    let mut objs: Vec<String> = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {n} >>",
            (0..n)
                .map(|i| format!("{} 0 R", 4 + 2 * i))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into(),
    ];
    for (i, lines) in pages.iter().enumerate() {
        objs.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        let mut content = String::from("BT /F1 12 Tf 14 TL 72 720 Td\n");
        for line in lines.iter() {
            content.push_str(&format!("({line}) Tj T*\n"));
        }
        content.push_str("ET");
        objs.push(format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ));
    }
    let mut out = String::from("%PDF-1.4\n");
    for (i, o) in objs.iter().enumerate() {
        out.push_str(&format!("{} 0 obj\n{o}\nendobj\n", i + 1));
    }
    out.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\n%%EOF\n",
        objs.len() + 1
    ));
    out.into_bytes()
}

/// A Gemini request with the API key header; `path` starts with `/v1beta`
/// (or `/upload`, `/download`).
pub fn gem(c: &Client, emu: &EmulatorHandle, method: Method, path: &str) -> RequestBuilder {
    c.request(method, format!("{}{path}", emu.gemini_base_url()))
        .header("x-goog-api-key", KEY)
}

/// A `GenerateContentRequest` with one user text.
pub fn gen_request(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
}

/// An inline request entry keyed `key`.
pub fn inline(key: &str, request: Value) -> Value {
    json!({"request": request, "metadata": {"key": key}})
}

/// Creates a Gemini batch from inline requests; returns the Operation.
pub async fn create_gemini(
    c: &Client,
    emu: &EmulatorHandle,
    model: &str,
    requests: Vec<Value>,
) -> Value {
    let (status, _, v) = json_of(
        gem(c, emu, Method::POST, &format!("/v1beta/models/{model}:batchGenerateContent"))
            .json(&json!({"batch": {"displayName": "test", "inputConfig": {"requests": {"requests": requests}}}}))
            .send()
            .await
            .expect("create"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v
}

pub async fn get_gemini(c: &Client, emu: &EmulatorHandle, name: &str) -> Value {
    let (status, _, v) = json_of(
        gem(c, emu, Method::GET, &format!("/v1beta/{name}"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v
}

/// Polls until the Operation is `done` (10 s at most).
pub async fn wait_done(c: &Client, emu: &EmulatorHandle, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let b = get_gemini(c, emu, name).await;
        if b["done"] == true {
            return b;
        }
        assert!(Instant::now() < deadline, "batch {name} did not end: {b}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Uploads `content` with the resumable protocol; returns the File.
pub async fn upload_gemini(c: &Client, emu: &EmulatorHandle, content: &[u8]) -> Value {
    let start = gem(c, emu, Method::POST, "/upload/v1beta/files")
        .header("X-Goog-Upload-Protocol", "resumable")
        .header("X-Goog-Upload-Command", "start")
        .header(
            "X-Goog-Upload-Header-Content-Length",
            content.len().to_string(),
        )
        .header("X-Goog-Upload-Header-Content-Type", "application/jsonl")
        .json(&json!({"file": {"display_name": "requests"}}))
        .send()
        .await
        .expect("start");
    assert_eq!(start.status(), 200);
    assert_eq!(start.headers()["x-goog-upload-status"], "active");
    let url = start.headers()["x-goog-upload-url"]
        .to_str()
        .unwrap()
        .to_string();
    let resp = c
        .post(url)
        .header("X-Goog-Upload-Command", "upload, finalize")
        .header("X-Goog-Upload-Offset", "0")
        .body(content.to_vec())
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.headers()["x-goog-upload-status"], "final");
    let (status, _, v) = json_of(resp).await;
    assert_eq!(status, 200, "{v}");
    v["file"].clone()
}
