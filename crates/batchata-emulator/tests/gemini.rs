//! HTTP-level tests of the emulated Gemini API batch mode and Files API.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use batchata_emulator::{EmulatorConfig, Endpoint, FaultKind};
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

fn responses(op: &Value) -> &Vec<Value> {
    op["response"]["inlinedResponses"]["inlinedResponses"]
        .as_array()
        .unwrap_or_else(|| panic!("no inline responses in {op}"))
}

fn text_of(resp: &Value) -> &str {
    resp["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {resp}"))
}

#[tokio::test]
async fn inline_batch_runs_to_succeeded_with_keyed_results_in_both_places() {
    let emu = start(EmulatorConfig::default().seed(7)).await;
    let c = client();
    let requests: Vec<Value> = (0..12)
        .map(|i| inline(&format!("k{i:02}"), gen_request(&format!("Question {i}"))))
        .collect();
    let created = create_gemini(&c, &emu, "gemini-2.5-flash", requests).await;
    let name = created["name"].as_str().unwrap();
    assert!(name.starts_with("batches/") && name.len() > 20, "{name}");
    let meta = &created["metadata"];
    assert_eq!(
        meta["@type"],
        "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch"
    );
    assert_eq!(meta["state"], "BATCH_STATE_PENDING");
    assert_eq!(meta["model"], "models/gemini-2.5-flash");
    assert_eq!(meta["displayName"], "test");
    assert_eq!(meta["name"], name);
    // proto3 JSON: no `done: false`, int64 counts as strings, zeros absent.
    assert!(created.get("done").is_none(), "{created}");
    assert_eq!(
        meta["batchStats"],
        json!({"requestCount": "12", "pendingRequestCount": "12"})
    );
    assert!(meta["createTime"].as_str().unwrap().ends_with('Z'));

    let done = wait_done(&c, &emu, name).await;
    let meta = &done["metadata"];
    assert_eq!(meta["state"], "BATCH_STATE_SUCCEEDED");
    assert_eq!(
        meta["batchStats"],
        json!({"requestCount": "12", "successfulRequestCount": "12"})
    );
    assert!(meta["endTime"].is_string());
    assert_eq!(
        done["response"]["@type"],
        "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatchOutput"
    );
    assert_eq!(
        done["response"]["inlinedResponses"],
        meta["output"]["inlinedResponses"]
    );
    let items = responses(&done);
    assert_eq!(items.len(), 12);
    let keys: Vec<&str> = items
        .iter()
        .map(|r| r["metadata"]["key"].as_str().unwrap())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_ne!(keys, sorted, "results come back out of request order");
    for r in items {
        let key = r["metadata"]["key"].as_str().unwrap();
        let n: usize = key[1..].parse().unwrap();
        let resp = &r["response"];
        assert!(
            text_of(resp).contains(&format!("Question {n}")),
            "{key}: {resp}"
        );
        assert_eq!(resp["candidates"][0]["finishReason"], "STOP");
        assert_eq!(resp["candidates"][0]["content"]["role"], "model");
        let u = &resp["usageMetadata"];
        let (p, c, t) = (
            u["promptTokenCount"].as_u64().unwrap(),
            u["candidatesTokenCount"].as_u64().unwrap(),
            u["thoughtsTokenCount"].as_u64().unwrap(),
        );
        // gemini-2.5-flash thinks by default; thoughts are not in candidates.
        assert!(t > 0);
        assert_eq!(u["totalTokenCount"].as_u64().unwrap(), p + c + t);
        assert_eq!(resp["modelVersion"], "gemini-2.5-flash");
    }
    // The same answers on every read.
    assert_eq!(get_gemini(&c, &emu, name).await, done);

    let stats = emu.stats();
    assert_eq!(stats.calls_to("gemini.create"), 1);
    assert!(stats.calls_to("gemini.get") >= 2);
    let b: Vec<_> = stats.batches_for("gemini").collect();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].id, name);
    assert_eq!(b[0].status, "BATCH_STATE_SUCCEEDED");
    assert_eq!((b[0].request_count, b[0].custom_ids), (12, 12));
    assert_eq!(b[0].metadata, Some(json!({"displayName": "test"})));
}

#[tokio::test]
async fn structured_output_follows_either_schema_form_and_snake_case_is_read() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let json_schema = json!({"type": "object",
        "properties": {"invoice_number": {"type": "string"}, "total": {"type": "number"}},
        "required": ["invoice_number", "total"]});
    let openapi = json!({"type": "OBJECT",
        "properties": {"invoice_number": {"type": "STRING"}, "total": {"type": "NUMBER"}},
        "required": ["invoice_number", "total"], "propertyOrdering": ["invoice_number", "total"]});
    let pdf = base64::engine::general_purpose::STANDARD
        .encode(build_pdf(&[&["Invoice number: INV-7", "Total: 12.5"]]));
    let requests = vec![
        inline(
            "json",
            json!({"contents": [{"role": "user", "parts": [{"text": "Invoice number: INV-1\nTotal: 40"}]}],
                "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": json_schema}}),
        ),
        inline(
            "openapi",
            json!({"system_instruction": {"parts": [{"text": "Extract."}]},
                "contents": [{"role": "user", "parts": [{"text": "Invoice number: INV-2\nTotal: 3"}]}],
                "generation_config": {"response_mime_type": "application/json", "response_schema": openapi, "max_output_tokens": 500}}),
        ),
        inline(
            "pdf",
            json!({"contents": [{"role": "user", "parts": [
                {"inline_data": {"mime_type": "application/pdf", "data": pdf}},
                {"text": "Extract the invoice."}]}],
                "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": json_schema}}),
        ),
    ];
    let created = create_gemini(&c, &emu, "gemini-2.0-flash", requests).await;
    let done = wait_done(&c, &emu, created["name"].as_str().unwrap()).await;
    let by_key: HashMap<String, Value> = responses(&done)
        .iter()
        .map(|r| {
            (
                r["metadata"]["key"].as_str().unwrap().to_string(),
                r["response"].clone(),
            )
        })
        .collect();
    let parsed = |k: &str| -> Value { serde_json::from_str(text_of(&by_key[k])).unwrap() };
    assert_eq!(
        parsed("json"),
        json!({"invoice_number": "INV-1", "total": 40})
    );
    assert_eq!(
        parsed("openapi"),
        json!({"invoice_number": "INV-2", "total": 3})
    );
    assert_eq!(
        parsed("pdf"),
        json!({"invoice_number": "INV-7", "total": 12.5})
    );
    // 2.0 models do not think.
    assert!(by_key["json"]["usageMetadata"]
        .get("thoughtsTokenCount")
        .is_none());
}

#[tokio::test]
async fn file_batch_uploads_resumably_and_results_download_from_both_paths() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let mut content = String::new();
    for i in 0..5 {
        content.push_str(
            &json!({"key": format!("line-{i}"), "request": gen_request(&format!("Line {i}"))})
                .to_string(),
        );
        content.push('\n');
    }
    let file = upload_gemini(&c, &emu, content.as_bytes()).await;
    let fname = file["name"].as_str().unwrap();
    assert!(fname.starts_with("files/"), "{file}");
    assert_eq!(file["sizeBytes"], content.len().to_string());
    assert_eq!(file["mimeType"], "application/jsonl");
    assert_eq!(file["displayName"], "requests");
    assert_eq!(file["source"], "UPLOADED");
    assert_eq!(file["state"], "ACTIVE");
    assert!(file.get("downloadUri").is_none());
    assert_eq!(get_gemini(&c, &emu, fname).await, file);

    let (status, _, created) = json_of(
        gem(
            &c,
            &emu,
            Method::POST,
            "/v1beta/models/gemini-2.5-flash-lite:batchGenerateContent",
        )
        .json(
            &json!({"batch": {"display_name": "from-file", "input_config": {"file_name": fname}}}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let done = wait_done(&c, &emu, created["name"].as_str().unwrap()).await;
    let out = done["response"]["responsesFile"].as_str().unwrap();
    assert_eq!(done["metadata"]["output"]["responsesFile"], out);
    assert!(out.starts_with("files/batch-"), "{out}");
    let id = out.trim_start_matches("files/");
    let result_file = get_gemini(&c, &emu, out).await;
    assert_eq!(result_file["source"], "GENERATED");
    assert!(result_file["downloadUri"]
        .as_str()
        .unwrap()
        .contains(":download?alt=media"));

    let mut bodies = Vec::new();
    for path in [
        format!("/download/v1beta/files/{id}:download?alt=media"),
        format!("/v1beta/files/{id}:download?alt=media"),
    ] {
        let resp = gem(&c, &emu, Method::GET, &path).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        bodies.push(resp.text().await.unwrap());
    }
    assert_eq!(bodies[0], bodies[1]);
    let lines: Vec<Value> = bodies[0]
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    for l in &lines {
        let key = l["key"].as_str().unwrap();
        let n = key.trim_start_matches("line-");
        assert!(
            text_of(&l["response"]).contains(&format!("Line {n}")),
            "{l}"
        );
        // flash-lite does not think.
        assert!(l["response"]["usageMetadata"]
            .get("thoughtsTokenCount")
            .is_none());
    }
    // Uploaded files are not downloadable; ?alt=media is required.
    let (status, _, err) = json_of(
        gem(
            &c,
            &emu,
            Method::GET,
            &format!("/v1beta/{fname}:download?alt=media"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    let status = gem(
        &c,
        &emu,
        Method::GET,
        &format!("/v1beta/files/{id}:download"),
    )
    .send()
    .await
    .unwrap()
    .status();
    assert_eq!(status, 400);

    // Files list (newest first) and delete.
    let (_, _, list) = json_of(
        gem(&c, &emu, Method::GET, "/v1beta/files?pageSize=1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["files"].as_array().unwrap().len(), 1);
    assert_eq!(list["files"][0]["name"], out);
    assert!(list["nextPageToken"].is_string());
    let (status, _, del) = json_of(
        gem(&c, &emu, Method::DELETE, &format!("/v1beta/{fname}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, del), (200, json!({})));
    let (status, _, err) = json_of(
        gem(&c, &emu, Method::GET, &format!("/v1beta/{fname}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["status"], "NOT_FOUND");
    assert_eq!(err["error"]["code"], 404);
    let stats = emu.stats();
    assert_eq!(stats.calls_to("gemini.files.start"), 1);
    assert_eq!(stats.calls_to("gemini.files.upload"), 1);
    assert_eq!(stats.calls_to("gemini.files.download"), 4);
}

#[tokio::test]
async fn chunked_upload_checks_offsets_and_the_declared_size() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let start = gem(&c, &emu, Method::POST, "/upload/v1beta/files")
        .header("X-Goog-Upload-Protocol", "resumable")
        .header("X-Goog-Upload-Command", "start")
        .header("X-Goog-Upload-Header-Content-Length", "10")
        .header("X-Goog-Upload-Header-Content-Type", "application/jsonl")
        .send()
        .await
        .unwrap();
    let url = start.headers()["x-goog-upload-url"]
        .to_str()
        .unwrap()
        .to_string();
    let send = |cmd: &'static str, offset: &'static str, body: &'static [u8]| {
        c.post(&url)
            .header("X-Goog-Upload-Command", cmd)
            .header("X-Goog-Upload-Offset", offset)
            .body(body)
            .send()
    };
    let r = send("upload", "0", b"01234").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-goog-upload-status"], "active");
    assert_eq!(r.headers()["x-goog-upload-size-received"], "5");
    let r = send("upload", "0", b"56789").await.unwrap();
    assert_eq!(r.status(), 400, "wrong offset");
    let r = send("upload, finalize", "5", b"567").await.unwrap();
    assert_eq!(r.status(), 400, "short of the declared size");
    let r = send("upload, finalize", "8", b"89").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-goog-upload-status"], "final");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["file"]["sizeBytes"], "10");
    // The session is gone once finalized.
    let r = send("upload, finalize", "10", b"").await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn pending_running_cancel_and_delete() {
    let emu = start(
        EmulatorConfig::default()
            .processing_delay(Duration::from_millis(1500))
            .cancel_delay(Duration::from_millis(100)),
    )
    .await;
    let c = client();
    let op = create_gemini(
        &c,
        &emu,
        "gemini-2.5-pro",
        vec![inline("a", gen_request("x")), inline("b", gen_request("y"))],
    )
    .await;
    let name = op["name"].as_str().unwrap().to_string();
    let id = name.trim_start_matches("batches/");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running = get_gemini(&c, &emu, &name).await;
    assert_eq!(running["metadata"]["state"], "BATCH_STATE_RUNNING");
    assert!(running.get("done").is_none());
    assert!(running.get("response").is_none());

    let (status, _, v) = json_of(
        gem(
            &c,
            &emu,
            Method::POST,
            &format!("/v1beta/batches/{id}:cancel"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!((status, v), (200, json!({})));
    let done = wait_done(&c, &emu, &name).await;
    assert_eq!(done["metadata"]["state"], "BATCH_STATE_CANCELLED");
    assert!(done.get("response").is_none() && done["metadata"].get("output").is_none());
    assert_eq!(done["error"]["code"], 1);
    // Cancelling an ended batch is refused.
    let (status, _, err) = json_of(
        gem(
            &c,
            &emu,
            Method::POST,
            &format!("/v1beta/batches/{id}:cancel"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["status"], "FAILED_PRECONDITION");

    // List: newest first, paged by token.
    let op2 = create_gemini(
        &c,
        &emu,
        "gemini-2.5-pro",
        vec![inline("c", gen_request("z"))],
    )
    .await;
    let (_, _, page) = json_of(
        gem(&c, &emu, Method::GET, "/v1beta/batches?pageSize=1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page["operations"][0]["name"], op2["name"]);
    let token = page["nextPageToken"].as_str().unwrap();
    let (_, _, page2) = json_of(
        gem(
            &c,
            &emu,
            Method::GET,
            &format!("/v1beta/batches?pageSize=1&pageToken={token}"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(page2["operations"][0]["name"], name.as_str());
    assert!(page2.get("nextPageToken").is_none(), "{page2}");

    let (status, _, v) = json_of(
        gem(&c, &emu, Method::DELETE, &format!("/v1beta/{name}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, v), (200, json!({})));
    let status = gem(&c, &emu, Method::GET, &format!("/v1beta/{name}"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    assert!(emu.stats().batches_for("gemini").any(|b| b.deleted));
}

#[tokio::test]
async fn expired_batches_have_no_results_and_bad_files_fail_the_batch() {
    let emu = start(EmulatorConfig::default().expire_all()).await;
    let c = client();
    let op = create_gemini(
        &c,
        &emu,
        "gemini-2.5-flash",
        vec![inline("a", gen_request("x"))],
    )
    .await;
    let done = wait_done(&c, &emu, op["name"].as_str().unwrap()).await;
    assert_eq!(done["metadata"]["state"], "BATCH_STATE_EXPIRED");
    assert!(done.get("response").is_none());
    assert!(done.get("error").is_none());

    let emu = start(EmulatorConfig::default()).await;
    let file = upload_gemini(
        &c,
        &emu,
        b"{\"key\":\"a\",\"request\":{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}]}}\nnot json\n",
    )
    .await;
    let (_, _, op) = json_of(
        gem(
            &c,
            &emu,
            Method::POST,
            "/v1beta/models/gemini-2.5-flash:batchGenerateContent",
        )
        .json(&json!({"batch": {"inputConfig": {"fileName": file["name"]}}}))
        .send()
        .await
        .unwrap(),
    )
    .await;
    let done = wait_done(&c, &emu, op["name"].as_str().unwrap()).await;
    assert_eq!(done["metadata"]["state"], "BATCH_STATE_FAILED");
    let msg = done["error"]["message"].as_str().unwrap();
    assert!(msg.contains("line 2"), "{msg}");
    assert!(done.get("response").is_none());
}

#[tokio::test]
async fn invalid_requests_error_alone_and_malformed_bodies_are_refused() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let bad_role = json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]});
    let both = json!({"contents": [{"parts": [{"text": "x"}]}],
        "generationConfig": {"responseMimeType": "application/json",
            "responseSchema": {"type": "OBJECT"}, "responseJsonSchema": {"type": "object"}}});
    let op = create_gemini(
        &c,
        &emu,
        "gemini-2.5-flash",
        vec![
            inline("ok", gen_request("fine")),
            inline("role", bad_role),
            inline("both", both),
        ],
    )
    .await;
    let done = wait_done(&c, &emu, op["name"].as_str().unwrap()).await;
    assert_eq!(
        done["metadata"]["batchStats"],
        json!({"requestCount": "3", "successfulRequestCount": "1", "failedRequestCount": "2"})
    );
    for r in responses(&done) {
        match r["metadata"]["key"].as_str().unwrap() {
            "ok" => assert!(r.get("error").is_none()),
            _ => {
                assert_eq!(r["error"]["code"], 3, "{r}");
                assert!(r.get("response").is_none());
            }
        }
    }

    // An unknown field is a proto parse error: the whole create is refused.
    let (status, _, err) = json_of(
        gem(&c, &emu, Method::POST, "/v1beta/models/gemini-2.5-flash:batchGenerateContent")
            .json(&json!({"batch": {"inputConfig": {"requests": {"requests": [
                {"request": {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"maxTokens": 5}}}
            ]}}}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["status"], "INVALID_ARGUMENT");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Unknown name \"maxTokens\""),
        "{err}"
    );
    // Unknown model.
    let (status, _, err) = json_of(
        gem(&c, &emu, Method::POST, "/v1beta/models/gpt-4o:batchGenerateContent")
            .json(&json!({"batch": {"inputConfig": {"requests": {"requests": [inline("a", gen_request("x"))]}}}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["status"], "NOT_FOUND");

    // error_rate: requests fail with INTERNAL (13), chosen by key.
    let emu = start(EmulatorConfig::default().error_rate(1.0)).await;
    let op = create_gemini(
        &c,
        &emu,
        "gemini-2.5-flash",
        vec![inline("a", gen_request("x"))],
    )
    .await;
    let done = wait_done(&c, &emu, op["name"].as_str().unwrap()).await;
    assert_eq!(responses(&done)[0]["error"]["code"], 13);
}

#[tokio::test]
async fn auth_errors_are_googles() {
    let emu = start(EmulatorConfig::default().api_key(KEY)).await;
    let c = client();
    let resp = c
        .get(format!("{}/v1beta/batches", emu.gemini_base_url()))
        .send()
        .await
        .unwrap();
    let (status, headers, err) = json_of(resp).await;
    assert_eq!(status, 403);
    assert_eq!(err["error"]["status"], "PERMISSION_DENIED");
    assert!(!headers.contains_key("request-id") && !headers.contains_key("x-request-id"));

    let resp = c
        .get(format!("{}/v1beta/batches", emu.gemini_base_url()))
        .header("x-goog-api-key", "wrong")
        .send()
        .await
        .unwrap();
    let (status, _, err) = json_of(resp).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["code"], 400);
    assert_eq!(err["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(
        err["error"]["message"],
        "API key not valid. Please pass a valid API key."
    );
    assert_eq!(err["error"]["details"][0]["reason"], "API_KEY_INVALID");

    // `?key=` works as well as the header.
    let resp = c
        .get(format!(
            "{}/v1beta/batches?key={KEY}",
            emu.gemini_base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn faults_use_googles_envelope_and_retry_info() {
    let emu = start(
        EmulatorConfig::default()
            .fail_first(
                Endpoint::GeminiCreate,
                1,
                FaultKind::Status429 {
                    retry_after_ms: 1500,
                },
            )
            .fail_first(Endpoint::GeminiGet, 1, FaultKind::Status529),
    )
    .await;
    let c = client();
    let body = json!({"batch": {"inputConfig": {"requests": {"requests": [inline("a", gen_request("x"))]}}}});
    let (status, _, err) = json_of(
        gem(
            &c,
            &emu,
            Method::POST,
            "/v1beta/models/gemini-2.5-flash:batchGenerateContent",
        )
        .json(&body)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(err["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(
        err["error"]["details"][0]["@type"],
        "type.googleapis.com/google.rpc.RetryInfo"
    );
    assert_eq!(err["error"]["details"][0]["retryDelay"], "1.500s");
    let op = create_gemini(
        &c,
        &emu,
        "gemini-2.5-flash",
        vec![inline("a", gen_request("x"))],
    )
    .await;
    let (status, _, err) = json_of(
        gem(
            &c,
            &emu,
            Method::GET,
            &format!("/v1beta/{}", op["name"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 503, "Gemini has no 529");
    assert_eq!(err["error"]["status"], "UNAVAILABLE");
    let stats = emu.stats();
    assert_eq!(stats.faults_of("429"), 1);
    assert_eq!(stats.faults_by_endpoint["gemini.create"], 1);
    assert_eq!(stats.faults_by_endpoint["gemini.get"], 1);
}

#[tokio::test]
async fn v1_paths_with_a_google_key_are_gemini_and_openai_keeps_its_own() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let (status, _, op) = json_of(
        c.post(format!(
            "{}/v1/models/gemini-2.5-flash:batchGenerateContent",
            emu.gemini_base_url()
        ))
        .header("x-goog-api-key", KEY)
        .json(&json!({"batch": {"inputConfig": {"requests": {"requests": [inline("a", gen_request("x"))]}}}}))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{op}");
    let name = op["name"].as_str().unwrap();
    let got = c
        .get(format!("{}/v1/{name}", emu.gemini_base_url()))
        .header("x-goog-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let got: Value = got.json().await.unwrap();
    assert_eq!(got["name"], name);
    let (_, _, list) = json_of(
        c.get(format!("{}/v1/batches", emu.gemini_base_url()))
            .header("x-goog-api-key", KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["operations"][0]["name"], name);
    // OpenAI's /v1/batches is untouched.
    let (status, _, list) =
        json_of(oai(&c, &emu, Method::GET, "/batches").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(list["object"], "list");
}
