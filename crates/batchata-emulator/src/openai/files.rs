//! The OpenAI Files API: upload (multipart, size-limited), retrieve, list,
//! delete and download. Batch input files are uploaded here, and a finished
//! batch's output and error files are served from here too. The `limit`
//! check of `GET /v1/files` is shared with the batch list.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{File, FILE_PURPOSES, FILE_TTL_SECS};
use crate::error::ApiError;
use crate::page;
use crate::request::{query_get, query_pairs};
use crate::server::{lock, AppState};

impl File {
    pub(super) fn view(&self) -> Value {
        json!({
            "id": self.id,
            "object": "file",
            "bytes": self.content.len(),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": null,
        })
    }
}

/// `POST /v1/files` (multipart: `file`, `purpose`, optional `expires_after[...]`).
pub(crate) async fn upload_file(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let limit = state.config.openai_max_file_bytes;
    let too_large = || {
        ApiError::openai(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("File is too large; the maximum size is {limit} bytes."),
            Some("file"),
            None,
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(64 * 1024)) {
        return Err(too_large());
    }
    let mut multipart = Multipart::from_request(req, &()).await.map_err(|e| {
        ApiError::openai_invalid(
            format!("Expected a multipart/form-data body: {}", e.body_text()),
            None,
        )
    })?;
    let mut file: Option<(String, Bytes)> = None;
    let mut purpose: Option<String> = None;
    let mut expires_secs: Option<i64> = None;
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        ApiError::openai_invalid(
            format!("Could not read the multipart body: {}", e.body_text()),
            None,
        )
    };
    while let Some(mut field) = multipart.next_field().await.map_err(bad_form)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "file" => {
                let filename = field.file_name().unwrap_or("upload.jsonl").to_string();
                let mut buf = bytes::BytesMut::new();
                while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
                    if buf.len() + chunk.len() > limit {
                        return Err(too_large());
                    }
                    buf.extend_from_slice(&chunk);
                }
                file = Some((filename, buf.freeze()));
            }
            "purpose" => purpose = Some(field.text().await.map_err(bad_form)?.trim().to_string()),
            "expires_after[seconds]" => {
                let text = field.text().await.map_err(bad_form)?;
                match text.trim().parse::<i64>() {
                    Ok(s) if (3600..=2_592_000).contains(&s) => expires_secs = Some(s),
                    _ => {
                        return Err(ApiError::openai_invalid(
                            "Invalid 'expires_after.seconds': expected an integer between 3600 and 2592000.",
                            Some("expires_after.seconds"),
                        ))
                    }
                }
            }
            _ => {
                // Unknown fields (e.g. expires_after[anchor]) are read and ignored.
                let _ = field.bytes().await.map_err(bad_form)?;
            }
        }
    }
    let Some((filename, content)) = file else {
        return Err(ApiError::openai_invalid(
            "Missing required parameter: 'file'.",
            Some("file"),
        ));
    };
    let Some(purpose) = purpose else {
        return Err(ApiError::openai_invalid(
            "Missing required parameter: 'purpose'.",
            Some("purpose"),
        ));
    };
    if !FILE_PURPOSES.contains(&purpose.as_str()) {
        return Err(ApiError::openai_invalid(
            format!("Invalid value for 'purpose': '{purpose}'."),
            Some("purpose"),
        ));
    }
    let created_at = chrono::Utc::now().timestamp();
    let ttl = expires_secs.or((purpose == "batch").then_some(FILE_TTL_SECS));
    let file = File {
        id: state.ids.openai_file(),
        filename,
        purpose,
        created_at,
        expires_at: ttl.map(|s| created_at + s),
        content,
        deleted: false,
        batch_id: None,
    };
    Ok(Json(lock(&state.openai).add_file(file)))
}

/// `GET /v1/files/{id}`
pub(crate) async fn retrieve_file(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(lock(&state.openai).file(&id, Instant::now())?.view()))
}

/// `DELETE /v1/files/{id}`
pub(crate) async fn delete_file(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut store = lock(&state.openai);
    store.file(&id, Instant::now())?;
    if let Some(f) = store.files.get_mut(&id) {
        f.deleted = true;
        f.content = Bytes::new();
    }
    Ok(Json(json!({"id": id, "object": "file", "deleted": true})))
}

/// `GET /v1/files/{id}/content` — the raw bytes.
pub(crate) async fn file_content(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let content = lock(&state.openai)
        .file(&id, Instant::now())?
        .content
        .clone();
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        content,
    )
        .into_response())
}

/// `GET /v1/files?purpose=&limit=&after=&order=`
pub(crate) async fn list_files(
    State(state): State<Arc<AppState>>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = query_pairs(uri.query());
    let limit = parse_limit(query_get(&q, "limit"), 10_000, 10_000)?;
    let purpose = query_get(&q, "purpose").filter(|p| !p.is_empty());
    let ascending = match query_get(&q, "order") {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(other) => {
            return Err(ApiError::openai_invalid(
                format!(
                    "Invalid value for 'order': '{other}'. Supported values are: 'asc' and 'desc'."
                ),
                Some("order"),
            ))
        }
    };
    let now = Instant::now();
    let store = lock(&state.openai);
    let mut files: Vec<&File> = store
        .file_order
        .iter()
        .filter_map(|id| store.files.get(id))
        .filter(|f| store.file_known(f, now) && purpose.is_none_or(|p| f.purpose == p))
        .collect();
    if !ascending {
        files.reverse();
    }
    let views: Vec<(String, Value)> = files.iter().map(|f| (f.id.clone(), f.view())).collect();
    Ok(Json(list_page(views, query_get(&q, "after"), limit)))
}

pub(super) fn parse_limit(
    raw: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match raw {
        None => Ok(default),
        Some(l) => match l.parse::<usize>() {
            Ok(l) if (1..=max).contains(&l) => Ok(l),
            _ => Err(ApiError::openai_invalid(
                format!("Invalid 'limit': expected an integer between 1 and {max}."),
                Some("limit"),
            )),
        },
    }
}

/// A cursor page over `(id, object)` pairs already in list order.
fn list_page(items: Vec<(String, Value)>, after: Option<&str>, limit: usize) -> Value {
    // An unknown cursor: an empty page.
    let (data, has_more) =
        page::after(&items, |(id, _)| id.as_str(), after, limit).unwrap_or((&[], false));
    json!({
        "object": "list",
        "data": data.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
        "first_id": data.first().map(|(id, _)| id.clone()),
        "last_id": data.last().map(|(id, _)| id.clone()),
        "has_more": has_more,
    })
}
