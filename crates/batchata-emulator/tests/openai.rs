//! HTTP-level tests of the emulated OpenAI Files and Batch APIs.

mod common;

use std::time::{Duration, Instant};

use batchata_emulator::EmulatorConfig;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn files_upload_retrieve_content_list_delete() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let content = jsonl(&[chat_line("a", "hello")]);
    let file = upload(&c, &emu, &content).await;
    assert_eq!(file["object"], "file");
    assert_eq!(file["purpose"], "batch");
    assert_eq!(file["filename"], "batch.jsonl");
    assert_eq!(file["bytes"], content.len());
    assert_eq!(file["status"], "processed");
    assert!(file["created_at"].is_i64() && file["expires_at"].is_i64());
    let id = file["id"].as_str().unwrap();
    assert!(id.starts_with("file-"));

    let (status, _, got) = json_of(
        oai(&c, &emu, Method::GET, &format!("/files/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(got, file);
    let body = oai(&c, &emu, Method::GET, &format!("/files/{id}/content"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, content);

    let (_, _, list) = json_of(
        oai(&c, &emu, Method::GET, "/files?purpose=batch")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"][0]["id"], id);

    let (status, _, del) = json_of(
        oai(&c, &emu, Method::DELETE, &format!("/files/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(del, json!({"id": id, "object": "file", "deleted": true}));
    let (status, _, err) = json_of(
        oai(&c, &emu, Method::GET, &format!("/files/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["type"], "invalid_request_error");
    for key in ["message", "type", "param", "code"] {
        assert!(err["error"].get(key).is_some(), "{key} missing in {err}");
    }
}

#[tokio::test]
async fn batch_completes_with_output_and_error_files() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let mut no_model = chat_line("no-model", "x");
    no_model["body"].as_object_mut().unwrap().remove("model");
    let mut empty = chat_line("empty", "x");
    empty["body"]["messages"] = json!([]);
    let lines = vec![
        chat_line("ok-1", "What is 2+2?"),
        chat_line("ok-2", "Name a colour"),
        no_model,
        empty,
    ];
    let created = create_openai(&c, &emu, &lines).await;
    assert_eq!(created["object"], "batch");
    assert_eq!(created["status"], "validating");
    assert_eq!(created["endpoint"], "/v1/chat/completions");
    assert_eq!(created["completion_window"], "24h");
    assert_eq!(created["metadata"], json!({"job": "test"}));
    assert!(created["created_at"].is_i64());
    assert!(created["output_file_id"].is_null());
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("batch_"));

    let done = get_openai(&c, &emu, id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["request_counts"],
        json!({"total": 4, "completed": 2, "failed": 2})
    );
    for key in [
        "in_progress_at",
        "finalizing_at",
        "completed_at",
        "expires_at",
    ] {
        assert!(done[key].is_i64(), "{key}: {done}");
    }
    for key in [
        "failed_at",
        "expired_at",
        "cancelling_at",
        "cancelled_at",
        "errors",
    ] {
        assert!(done[key].is_null(), "{key}: {done}");
    }
    assert_eq!(done["metadata"], json!({"job": "test"}));
    assert_eq!(done["model"], "gpt-5-mini");
    // Observing it again gives the same files.
    assert_eq!(
        get_openai(&c, &emu, id).await["output_file_id"],
        done["output_file_id"]
    );

    let (_, _, out_file) = json_of(
        oai(
            &c,
            &emu,
            Method::GET,
            &format!("/files/{}", done["output_file_id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(out_file["purpose"], "batch_output");

    let out = file_lines(&c, &emu, &done["output_file_id"]).await;
    assert_eq!(out.len(), 2);
    let mut prompt_total = 0;
    let mut completion_total = 0;
    for line in &out {
        assert!(line["id"].as_str().unwrap().starts_with("batch_req_"));
        assert!(line["error"].is_null());
        let resp = &line["response"];
        assert_eq!(resp["status_code"], 200);
        assert!(resp["request_id"].is_string());
        let body = &resp["body"];
        assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(body["object"], "chat.completion");
        assert!(body["created"].is_i64());
        assert_eq!(body["model"], "gpt-5-mini");
        let choice = &body["choices"][0];
        assert_eq!(choice["index"], 0);
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(choice["message"]["role"], "assistant");
        assert!(choice["message"]["refusal"].is_null());
        assert!(choice["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Echo: "));
        let u = &body["usage"];
        assert_eq!(
            u["total_tokens"].as_u64().unwrap(),
            u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
        );
        assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 0);
        assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 0);
        prompt_total += u["prompt_tokens"].as_u64().unwrap();
        completion_total += u["completion_tokens"].as_u64().unwrap();
    }
    assert_eq!(done["usage"]["input_tokens"], prompt_total);
    assert_eq!(done["usage"]["output_tokens"], completion_total);

    let errs = file_lines(&c, &emu, &done["error_file_id"]).await;
    assert_eq!(errs.len(), 2);
    for line in &errs {
        assert_eq!(line["response"]["status_code"], 400);
        let e = &line["response"]["body"]["error"];
        assert_eq!(e["type"], "invalid_request_error");
        assert!(e["message"].is_string());
    }
    let empty_err = errs.iter().find(|l| l["custom_id"] == "empty").unwrap();
    assert_eq!(
        empty_err["response"]["body"]["error"]["code"],
        "empty_array"
    );

    let stats = emu.stats();
    let b = stats.batches_for("openai").next().unwrap();
    assert_eq!(b.request_count, 4);
    assert_eq!(b.custom_ids, 4);
    assert_eq!(b.metadata, Some(json!({"job": "test"})));
    assert_eq!(stats.calls_to("openai.files.create"), 1);
    assert_eq!(stats.calls_to("openai.batches.create"), 1);
}

#[tokio::test]
async fn invalid_input_fails_the_batch_with_line_errors() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let mut bad_method = chat_line("m", "x");
    bad_method["method"] = json!("GET");
    let mut bad_url = chat_line("u", "x");
    bad_url["url"] = json!("/v1/embeddings");
    let mut no_body = chat_line("b", "x");
    no_body.as_object_mut().unwrap().remove("body");
    let content = format!(
        "{}{}{{broken json\n{}{}{}",
        jsonl(&[chat_line("dup", "x")]),
        jsonl(&[chat_line("dup", "y")]),
        jsonl(&[bad_method]),
        jsonl(&[bad_url]),
        jsonl(&[no_body]),
    );
    let file = upload(&c, &emu, &content).await;
    let (status, _, created) = json_of(
        oai(&c, &emu, Method::POST, "/batches")
            .json(&json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(created["status"], "validating");
    let failed = get_openai(&c, &emu, created["id"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "failed");
    assert!(failed["failed_at"].is_i64());
    assert!(failed["in_progress_at"].is_null() && failed["output_file_id"].is_null());
    assert_eq!(failed["errors"]["object"], "list");
    let errors = failed["errors"]["data"].as_array().unwrap();
    let find = |code: &str| -> Value {
        errors
            .iter()
            .find(|e| e["code"] == code)
            .unwrap_or_else(|| panic!("{code} missing in {errors:?}"))
            .clone()
    };
    assert_eq!(find("duplicate_custom_id")["line"], 2);
    assert_eq!(find("invalid_json_line")["line"], 3);
    assert_eq!(find("invalid_value")["param"], "method");
    assert_eq!(find("url_mismatch")["line"], 5);
    assert_eq!(find("missing_required_parameter")["param"], "body");
    for e in errors {
        assert!(e["message"].is_string());
    }
}

#[tokio::test]
async fn too_many_lines_and_empty_files_fail() {
    let emu = start(EmulatorConfig::default().openai_limits(2, 1_000_000)).await;
    let c = client();
    let b = create_openai(
        &c,
        &emu,
        &[
            chat_line("1", "a"),
            chat_line("2", "b"),
            chat_line("3", "c"),
        ],
    )
    .await;
    let failed = get_openai(&c, &emu, b["id"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["errors"]["data"][0]["code"], "too_many_tasks");

    let b = create_openai(&c, &emu, &[]).await;
    let failed = get_openai(&c, &emu, b["id"].as_str().unwrap()).await;
    assert_eq!(failed["errors"]["data"][0]["code"], "empty_file");
}

#[tokio::test]
async fn lifecycle_moves_forward_through_every_phase() {
    let emu = start(EmulatorConfig::default().processing_delay(Duration::from_millis(2000))).await;
    let c = client();
    let b = create_openai(&c, &emu, &[chat_line("a", "x"), chat_line("b", "y")]).await;
    let id = b["id"].as_str().unwrap();
    let order = ["validating", "in_progress", "finalizing", "completed"];
    let mut seen = vec!["validating".to_string()];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = get_openai(&c, &emu, id).await["status"]
            .as_str()
            .unwrap()
            .to_string();
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if s == "completed" {
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let ranks: Vec<usize> = seen
        .iter()
        .map(|s| order.iter().position(|o| o == s).expect("known status"))
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert!(seen.contains(&"in_progress".to_string()), "{seen:?}");
}

#[tokio::test]
async fn cancel_keeps_finished_lines_and_reports_the_rest() {
    let emu = start(EmulatorConfig::default().processing_delay(Duration::from_secs(60))).await;
    let c = client();
    let lines: Vec<Value> = (0..5).map(|i| chat_line(&format!("c{i}"), "x")).collect();
    let b = create_openai(&c, &emu, &lines).await;
    let id = b["id"].as_str().unwrap();
    let (status, _, cancelling) = json_of(
        oai(&c, &emu, Method::POST, &format!("/batches/{id}/cancel"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(cancelling["status"], "cancelling");
    assert!(cancelling["cancelling_at"].is_i64());
    let done = wait_terminal(&c, &emu, id).await;
    assert_eq!(done["status"], "cancelled");
    assert!(done["cancelled_at"].is_i64());
    let errs = file_lines(&c, &emu, &done["error_file_id"]).await;
    assert_eq!(errs.len(), 5);
    assert!(errs
        .iter()
        .all(|l| l["error"]["code"] == "batch_cancelled" && l["response"].is_null()));
    let (status, _, err) = json_of(
        oai(&c, &emu, Method::POST, &format!("/batches/{id}/cancel"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cancelled"));
}

#[tokio::test]
async fn expired_batches_keep_finished_lines() {
    let emu = start(EmulatorConfig::default().expire_all()).await;
    let c = client();
    let lines: Vec<Value> = (0..30).map(|i| chat_line(&format!("e{i}"), "x")).collect();
    let b = create_openai(&c, &emu, &lines).await;
    let done = wait_terminal(&c, &emu, b["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "expired");
    assert!(done["expired_at"].is_i64());
    let out = file_lines(&c, &emu, &done["output_file_id"]).await;
    let errs = file_lines(&c, &emu, &done["error_file_id"]).await;
    assert_eq!(out.len() + errs.len(), 30);
    assert!(!out.is_empty() && !errs.is_empty());
    assert!(errs.iter().all(|l| l["error"]["code"] == "batch_expired"));
    assert_eq!(done["request_counts"]["completed"], out.len());
}

#[tokio::test]
async fn batches_list_pages_newest_first() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let mut ids = Vec::new();
    for i in 0..5 {
        let b = create_openai(&c, &emu, &[chat_line("a", &format!("{i}"))]).await;
        ids.push(b["id"].as_str().unwrap().to_string());
    }
    ids.reverse();
    let mut after: Option<String> = None;
    let mut got = Vec::new();
    let mut pages = 0;
    loop {
        let q = match &after {
            Some(a) => format!("/batches?limit=2&after={a}"),
            None => "/batches?limit=2".to_string(),
        };
        let (status, _, page) = json_of(oai(&c, &emu, Method::GET, &q).send().await.unwrap()).await;
        assert_eq!(status, 200);
        assert_eq!(page["object"], "list");
        let data = page["data"].as_array().unwrap();
        assert_eq!(page["first_id"], data[0]["id"]);
        assert_eq!(page["last_id"], data[data.len() - 1]["id"]);
        got.extend(data.iter().map(|b| b["id"].as_str().unwrap().to_string()));
        pages += 1;
        if page["has_more"] == false {
            break;
        }
        after = page["last_id"].as_str().map(str::to_string);
    }
    assert_eq!(pages, 3);
    assert_eq!(got, ids);
    assert_eq!(emu.stats().calls_to("openai.batches.list"), 3);
}

#[tokio::test]
async fn auth_404_and_413() {
    let emu = start(
        EmulatorConfig::default()
            .api_key(KEY)
            .openai_limits(100, 1000),
    )
    .await;
    let c = client();
    let (status, headers, err) = json_of(
        c.get(format!("{}/batches", emu.openai_base_url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(err["error"]["code"], "invalid_api_key");
    assert!(headers.contains_key("x-request-id"));
    let (status, _, err) = json_of(
        c.get(format!("{}/batches", emu.openai_base_url()))
            .bearer_auth("nope")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(err["error"]["code"], "invalid_api_key");

    let (status, _, err) = json_of(
        oai(&c, &emu, Method::GET, "/batches/batch_nope")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert!(err["error"]["param"].is_string() || err["error"]["param"].is_null());

    let (status, _, err) = json_of(
        oai(&c, &emu, Method::POST, "/batches")
            .json(&json!({"input_file_id": "file-nope", "endpoint": "/v1/chat/completions", "completion_window": "24h"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404, "{err}");

    let form = reqwest::multipart::Form::new()
        .text("purpose", "batch")
        .part(
            "file",
            reqwest::multipart::Part::bytes(vec![b'x'; 5000]).file_name("big.jsonl"),
        );
    let (status, _, err) = json_of(
        oai(&c, &emu, Method::POST, "/files")
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(err["error"]["type"], "invalid_request_error");

    let (status, _, err) = json_of(
        oai(&c, &emu, Method::POST, "/batches")
            .header("content-type", "application/json")
            .body("{oops")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"].as_str().unwrap().contains("JSON"));

    let (status, _, err) = json_of(
        oai(&c, &emu, Method::POST, "/batches")
            .json(&json!({"input_file_id": "f", "endpoint": "/v1/chat/completions", "completion_window": "1h"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["param"], "completion_window");
}
