//! What a provider can take away from a client mid-run, over real HTTP:
//! batches it forgets (`/_emulator/forget`, `forget_batches_after`) and API
//! keys it stops accepting (`/_emulator/revoke-keys`, `/_emulator/restore-keys`).

mod common;

use std::time::Duration;

use batchata_emulator::{EmulatorConfig, EmulatorHandle};
use common::*;
use reqwest::{Client, Method};
use serde_json::{json, Value};

/// Asserts an Anthropic not-found answer in the real envelope.
async fn assert_anthropic_404(resp: reqwest::Response, id: &str) {
    let (status, headers, err) = json_of(resp).await;
    assert_eq!(status, 404, "{err}");
    assert_eq!(err["type"], "error", "{err}");
    assert_eq!(err["error"]["type"], "not_found_error", "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains(id),
        "{err}"
    );
    assert_eq!(
        err["request_id"].as_str(),
        headers.get("request-id").and_then(|v| v.to_str().ok()),
        "{err}"
    );
    assert_eq!(err.as_object().unwrap().len(), 3, "{err}");
}

/// Asserts an OpenAI not-found answer in the real envelope (`param` is
/// null for batches, `"id"` for files).
async fn assert_openai_404(resp: reqwest::Response, id: &str, param: Option<&str>) {
    let (status, headers, err) = json_of(resp).await;
    assert_eq!(status, 404, "{err}");
    assert!(headers.contains_key("x-request-id"));
    let e = &err["error"];
    assert!(e["message"].as_str().unwrap().contains(id), "{err}");
    assert_eq!(e["type"], "invalid_request_error", "{err}");
    assert_eq!(e["param"].as_str(), param, "{err}");
    assert!(e["code"].is_null(), "{err}");
    assert_eq!(e.as_object().unwrap().len(), 4, "{err}");
}

async fn anthropic_ids(c: &Client, emu: &EmulatorHandle) -> Vec<String> {
    let (status, _, list) = json_of(
        anth(c, emu, Method::GET, "/v1/messages/batches")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    ids_of(&list)
}

async fn openai_ids(c: &Client, emu: &EmulatorHandle, path: &str) -> Vec<String> {
    let (status, _, list) = json_of(oai(c, emu, Method::GET, path).send().await.unwrap()).await;
    assert_eq!(status, 200, "{list}");
    ids_of(&list)
}

fn ids_of(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn forgotten_batches_answer_404_on_both_providers() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let a = create_anthropic(&c, &emu, vec![req("a", params("x"))]).await;
    let a_id = a["id"].as_str().unwrap().to_string();
    let ended = wait_ended(&c, &emu, &a_id).await;
    let results_url = ended["results_url"].as_str().unwrap().to_string();
    let o = create_openai(&c, &emu, &[chat_line("o", "hi")]).await;
    let o_id = o["id"].as_str().unwrap().to_string();
    let done = wait_terminal(&c, &emu, &o_id).await;
    let output_file = done["output_file_id"].as_str().unwrap().to_string();
    let input_file = done["input_file_id"].as_str().unwrap().to_string();

    let forgot: Value = c
        .post(format!("{}/_emulator/forget", emu.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(forgot, json!({"forgotten": 2}));

    // Anthropic: retrieve, cancel, results and delete all answer 404.
    let path = format!("/v1/messages/batches/{a_id}");
    for (method, p) in [
        (Method::GET, path.clone()),
        (Method::POST, format!("{path}/cancel")),
        (Method::GET, format!("{path}/results")),
        (Method::DELETE, path.clone()),
    ] {
        assert_anthropic_404(anth(&c, &emu, method, &p).send().await.unwrap(), &a_id).await;
    }
    let r = c
        .get(&results_url)
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_anthropic_404(r, &a_id).await;
    assert!(anthropic_ids(&c, &emu).await.is_empty());

    // OpenAI: retrieve and cancel answer 404; the batch's output goes with it.
    for (method, p) in [
        (Method::GET, format!("/batches/{o_id}")),
        (Method::POST, format!("/batches/{o_id}/cancel")),
    ] {
        let r = oai(&c, &emu, method, &p).send().await.unwrap();
        assert_openai_404(r, &o_id, None).await;
    }
    for p in [
        format!("/files/{output_file}"),
        format!("/files/{output_file}/content"),
    ] {
        let r = oai(&c, &emu, Method::GET, &p).send().await.unwrap();
        assert_openai_404(r, &output_file, Some("id")).await;
    }
    assert!(openai_ids(&c, &emu, "/batches").await.is_empty());
    assert_eq!(openai_ids(&c, &emu, "/files").await, vec![input_file]);

    // Batches created afterwards behave normally.
    let a2 = create_anthropic(&c, &emu, vec![req("a", params("x"))]).await;
    let a2_id = a2["id"].as_str().unwrap();
    wait_ended(&c, &emu, a2_id).await;
    assert_eq!(anthropic_ids(&c, &emu).await, vec![a2_id.to_string()]);
    let o2 = create_openai(&c, &emu, &[chat_line("o", "hi")]).await;
    let o2_id = o2["id"].as_str().unwrap();
    wait_terminal(&c, &emu, o2_id).await;
    assert_eq!(
        openai_ids(&c, &emu, "/batches").await,
        vec![o2_id.to_string()]
    );

    // The stats keep every batch and say which ones were forgotten.
    let stats = emu.stats();
    let seen: Vec<(&str, bool)> = stats
        .batches
        .iter()
        .map(|b| (b.id.as_str(), b.forgotten))
        .collect();
    assert_eq!(
        seen,
        vec![
            (a_id.as_str(), true),
            (o_id.as_str(), true),
            (a2_id, false),
            (o2_id, false)
        ]
    );
    assert_eq!(stats.batches_created, 4);
    // Forgetting again forgets only the two new ones.
    assert_eq!(emu.forget_batches(), 2);
    let stats = emu.stats();
    assert!(stats.batches.iter().all(|b| b.forgotten));
    assert_eq!(
        stats.batches_created, 4,
        "forgetting never lowers the count"
    );
}

#[tokio::test]
async fn batches_are_forgotten_a_while_after_creation() {
    let emu = start(EmulatorConfig::default().forget_batches_after(Duration::from_secs(1))).await;
    let c = client();
    let a = create_anthropic(&c, &emu, vec![req("a", params("x"))]).await;
    let a_id = a["id"].as_str().unwrap().to_string();
    let o = create_openai(&c, &emu, &[chat_line("o", "hi")]).await;
    let o_id = o["id"].as_str().unwrap().to_string();
    // Known at first.
    get_anthropic(&c, &emu, &a_id).await;
    get_openai(&c, &emu, &o_id).await;
    assert_eq!(anthropic_ids(&c, &emu).await.len(), 1);
    assert!(emu.stats().batches.iter().all(|b| !b.forgotten));

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let path = format!("/v1/messages/batches/{a_id}");
    assert_anthropic_404(
        anth(&c, &emu, Method::GET, &path).send().await.unwrap(),
        &a_id,
    )
    .await;
    assert_anthropic_404(
        anth(&c, &emu, Method::GET, &format!("{path}/results"))
            .send()
            .await
            .unwrap(),
        &a_id,
    )
    .await;
    assert_openai_404(
        oai(&c, &emu, Method::GET, &format!("/batches/{o_id}"))
            .send()
            .await
            .unwrap(),
        &o_id,
        None,
    )
    .await;
    assert!(anthropic_ids(&c, &emu).await.is_empty());
    assert!(openai_ids(&c, &emu, "/batches").await.is_empty());
    assert!(emu.stats().batches.iter().all(|b| b.forgotten));

    // A new batch is known again until its own time is up.
    let a2 = create_anthropic(&c, &emu, vec![req("b", params("y"))]).await;
    get_anthropic(&c, &emu, a2["id"].as_str().unwrap()).await;
}

/// A long OpenAI-style key, to check the 401 message masks it.
const LONG_KEY: &str = "sk-proj-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-MxYA";

async fn control(c: &Client, emu: &EmulatorHandle, path: &str) -> (u16, Value) {
    let r = c
        .post(format!("{}/_emulator/{path}", emu.base_url()))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// An Anthropic list call with the usual test key.
async fn anthropic_list(
    c: &Client,
    emu: &EmulatorHandle,
) -> (u16, reqwest::header::HeaderMap, Value) {
    json_of(
        anth(c, emu, Method::GET, "/v1/messages/batches")
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// An OpenAI list call with [`LONG_KEY`].
async fn openai_list(c: &Client, emu: &EmulatorHandle) -> (u16, reqwest::header::HeaderMap, Value) {
    json_of(
        c.get(format!("{}/batches", emu.openai_base_url()))
            .bearer_auth(LONG_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn assert_anthropic_401(status: u16, headers: &reqwest::header::HeaderMap, err: &Value) {
    assert_eq!(status, 401, "{err}");
    assert_eq!(
        err,
        &json!({
            "type": "error",
            "error": {"type": "authentication_error", "message": "invalid x-api-key"},
            "request_id": headers["request-id"].to_str().unwrap(),
        })
    );
}

fn assert_openai_401(status: u16, headers: &reqwest::header::HeaderMap, err: &Value) {
    assert_eq!(status, 401, "{err}");
    assert!(headers.contains_key("x-request-id"));
    let e = &err["error"];
    assert_eq!(e["type"], "invalid_request_error", "{err}");
    assert_eq!(e["code"], "invalid_api_key", "{err}");
    assert!(e["param"].is_null(), "{err}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.starts_with("Incorrect API key provided: sk-proj-*"),
        "{message}"
    );
    assert!(
        message.contains("*MxYA. You can find your API key"),
        "{message}"
    );
    assert!(
        !message.contains(LONG_KEY),
        "never the whole key: {message}"
    );
    assert_eq!(e.as_object().unwrap().len(), 4, "{err}");
}

#[tokio::test]
async fn revoked_keys_get_401s_until_restored() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    create_anthropic(&c, &emu, vec![req("a", params("x"))]).await;
    assert_eq!(anthropic_list(&c, &emu).await.0, 200);
    assert_eq!(openai_list(&c, &emu).await.0, 200);

    assert_eq!(
        control(&c, &emu, "revoke-keys").await,
        (200, json!({"keys": "revoked", "status": 401}))
    );
    let (status, headers, err) = anthropic_list(&c, &emu).await;
    assert_anthropic_401(status, &headers, &err);
    let (status, headers, err) = openai_list(&c, &emu).await;
    assert_openai_401(status, &headers, &err);
    // A create is refused before anything is stored.
    let (status, _, _) = json_of(
        anth(&c, &emu, Method::POST, "/v1/messages/batches")
            .json(&json!({"requests": [req("b", params("y"))]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(emu.stats().batches.len(), 1);
    // The control endpoints themselves are never refused.
    assert!(c
        .get(emu.stats_url())
        .send()
        .await
        .unwrap()
        .status()
        .is_success());

    assert_eq!(
        control(&c, &emu, "restore-keys").await,
        (200, json!({"keys": "restored"}))
    );
    assert_eq!(anthropic_list(&c, &emu).await.0, 200);
    assert_eq!(openai_list(&c, &emu).await.0, 200);

    // The same from Rust, and a reset accepts keys again too.
    emu.revoke_keys();
    assert_eq!(anthropic_list(&c, &emu).await.0, 401);
    emu.restore_keys();
    assert_eq!(anthropic_list(&c, &emu).await.0, 200);
    emu.revoke_keys();
    emu.reset();
    assert_eq!(openai_list(&c, &emu).await.0, 200);
}

#[tokio::test]
async fn revoked_keys_can_get_403_permission_errors() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    assert_eq!(
        control(&c, &emu, "revoke-keys?status=403").await,
        (200, json!({"keys": "revoked", "status": 403}))
    );
    let (status, headers, err) = anthropic_list(&c, &emu).await;
    assert_eq!(status, 403, "{err}");
    assert_eq!(
        err,
        json!({
            "type": "error",
            "error": {
                "type": "permission_error",
                "message": "Your API key does not have permission to use the specified resource.",
            },
            "request_id": headers["request-id"].to_str().unwrap(),
        })
    );
    let (status, _, err) = openai_list(&c, &emu).await;
    assert_eq!(status, 403, "{err}");
    assert_eq!(
        err,
        json!({"error": {
            "message": "Country, region, or territory not supported",
            "type": "request_forbidden",
            "param": null,
            "code": "unsupported_country_region_territory",
        }})
    );
    // Revoking again as 401 switches the answer; nonsense is refused.
    control(&c, &emu, "revoke-keys?status=401").await;
    assert_eq!(anthropic_list(&c, &emu).await.0, 401);
    let (status, body) = control(&c, &emu, "revoke-keys?status=500").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("401 or 403"),
        "{body}"
    );
    emu.revoke_keys_as(batchata_emulator::KeyRejection::Forbidden);
    assert_eq!(openai_list(&c, &emu).await.0, 403);
    control(&c, &emu, "restore-keys").await;
    assert_eq!(openai_list(&c, &emu).await.0, 200);
}

#[tokio::test]
async fn a_configured_key_refuses_others_with_the_same_envelopes() {
    let emu = start(EmulatorConfig::default().api_key(KEY)).await;
    let c = client();
    assert_eq!(anthropic_list(&c, &emu).await.0, 200);
    let (status, headers, err) = json_of(
        c.get(format!("{}/v1/messages/batches", emu.anthropic_base_url()))
            .header("x-api-key", "wrong-key")
            .header("anthropic-version", "2023-06-01")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_anthropic_401(status, &headers, &err);
    // LONG_KEY is not the configured key.
    let (status, headers, err) = openai_list(&c, &emu).await;
    assert_openai_401(status, &headers, &err);
    // Revoking refuses even the configured key; restoring goes back to it.
    emu.revoke_keys();
    assert_eq!(anthropic_list(&c, &emu).await.0, 401);
    emu.restore_keys();
    assert_eq!(anthropic_list(&c, &emu).await.0, 200);
    assert_eq!(openai_list(&c, &emu).await.0, 401);
}
