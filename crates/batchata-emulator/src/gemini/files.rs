//! The part of the Files API batch mode needs: the resumable upload
//! protocol (start, then upload and finalize), get, list and delete, and
//! downloading a batch's generated results file.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Map, Value};

use super::batches::{cursor_page, page_size};
use super::create::payload;
use super::proto::{as_str, fields};
use super::routes::{header_str, internal, unknown_path};
use super::{rfc3339, File, FileSource, Upload, CHUNK_GRANULARITY, FILE_PAGE, FILE_TTL};
use crate::error::ApiError;
use crate::request::{query_get, query_pairs, read_body, BodyError};
use crate::server::{lock, AppState};

impl File {
    pub(super) fn view(&self, base_url: &str) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(format!("files/{}", self.id)));
        if let Some(d) = &self.display_name {
            m.insert("displayName".into(), json!(d));
        }
        m.insert("mimeType".into(), json!(self.mime_type));
        m.insert("sizeBytes".into(), json!(self.content.len().to_string()));
        m.insert("createTime".into(), json!(rfc3339(self.created)));
        m.insert("updateTime".into(), json!(rfc3339(self.created)));
        m.insert(
            "expirationTime".into(),
            json!(rfc3339(self.created + FILE_TTL)),
        );
        m.insert(
            "uri".into(),
            json!(format!("{base_url}/v1beta/files/{}", self.id)),
        );
        if self.source == FileSource::Generated {
            m.insert(
                "downloadUri".into(),
                json!(format!(
                    "{base_url}/download/v1beta/files/{}:download?alt=media",
                    self.id
                )),
            );
        }
        m.insert("state".into(), json!("ACTIVE"));
        m.insert(
            "source".into(),
            json!(match self.source {
                FileSource::Uploaded => "UPLOADED",
                FileSource::Generated => "GENERATED",
            }),
        );
        Value::Object(m)
    }
}

fn upload_header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    header_str(headers, name)
}

fn with_upload_headers(mut resp: Response, pairs: &[(&'static str, String)]) -> Response {
    for (name, value) in pairs {
        if let Ok(v) = value.parse() {
            resp.headers_mut().insert(HeaderName::from_static(name), v);
        }
    }
    resp
}

/// `POST /upload/v1beta/files`: starts a resumable upload, or (with
/// `upload_id`) takes its bytes.
pub(crate) async fn upload(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(uri.query());
    match query_get(&pairs, "upload_id") {
        None => upload_start(&state, uri.path(), &headers, body).await,
        Some(id) => upload_bytes(&state, id.to_string(), &headers, body).await,
    }
}

async fn upload_start(
    state: &Arc<AppState>,
    path: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    match upload_header(headers, "x-goog-upload-protocol") {
        Some(p) if p.eq_ignore_ascii_case("resumable") => {}
        Some(p) => {
            return Err(ApiError::gemini_invalid(format!(
                "Upload protocol '{p}' is not supported by the emulator; use X-Goog-Upload-Protocol: resumable."
            )))
        }
        None => {
            return Err(ApiError::gemini_invalid(
                "Media upload requires X-Goog-Upload-Protocol (resumable).",
            ))
        }
    }
    if !upload_header(headers, "x-goog-upload-command")
        .is_some_and(|c| c.eq_ignore_ascii_case("start"))
    {
        return Err(ApiError::gemini_invalid(
            "A resumable upload starts with X-Goog-Upload-Command: start.",
        ));
    }
    let declared = match upload_header(headers, "x-goog-upload-header-content-length") {
        None => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            ApiError::gemini_invalid(format!(
                "X-Goog-Upload-Header-Content-Length '{n}' is not a byte count."
            ))
        })?),
    };
    let limit = state.config.gemini_max_file_bytes;
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::gemini_invalid(format!(
            "File size exceeds the limit: {limit} bytes."
        )));
    }
    let meta_bytes = read_body(headers, body, 64 * 1024)
        .await
        .map_err(|_| ApiError::gemini_invalid("The upload metadata is too large."))?;
    let mut mime = upload_header(headers, "x-goog-upload-header-content-type").map(str::to_string);
    let mut display_name = None;
    let mut name = None;
    if !meta_bytes.iter().all(u8::is_ascii_whitespace) {
        let v: Value = serde_json::from_slice(&meta_bytes)
            .map_err(|e| ApiError::gemini_invalid(format!("Invalid JSON payload received. {e}")))?;
        let top = fields(&v, "", &["file"]).map_err(payload)?;
        if let Some(file) = top.get("file") {
            let f = fields(
                file,
                "file",
                &["name", "displayName", "mimeType", "sizeBytes"],
            )
            .map_err(payload)?;
            if let Some(d) = f.get("displayName") {
                display_name = Some(as_str(d, "file.display_name").map_err(payload)?.to_string());
            }
            if let Some(m) = f.get("mimeType") {
                mime.get_or_insert(as_str(m, "file.mime_type").map_err(payload)?.to_string());
            }
            if let Some(n) = f.get("name") {
                let n = as_str(n, "file.name").map_err(payload)?;
                let id = n.strip_prefix("files/").unwrap_or(n);
                if id.is_empty()
                    || id.len() > 40
                    || !id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                {
                    return Err(ApiError::gemini_invalid(format!(
                        "Invalid file name '{n}': lowercase letters, digits and dashes, at most 40."
                    )));
                }
                name = Some(id.to_string());
            }
        }
    }
    let id = state.ids.gemini_upload();
    lock(&state.gemini).uploads.insert(
        id.clone(),
        Upload {
            declared,
            mime_type: mime.unwrap_or_else(|| "application/octet-stream".into()),
            display_name,
            name,
            buf: bytes::BytesMut::new(),
        },
    );
    let url = format!(
        "{}{path}?upload_id={id}&upload_protocol=resumable",
        state.base_url
    );
    Ok(with_upload_headers(
        StatusCode::OK.into_response(),
        &[
            ("x-goog-upload-url", url.clone()),
            ("x-goog-upload-control-url", url),
            ("x-goog-upload-status", "active".into()),
            ("x-goog-upload-chunk-granularity", CHUNK_GRANULARITY.into()),
        ],
    ))
}

async fn upload_bytes(
    state: &Arc<AppState>,
    id: String,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let command = upload_header(headers, "x-goog-upload-command")
        .unwrap_or("")
        .to_ascii_lowercase();
    let words: Vec<&str> = command.split(',').map(str::trim).collect();
    let (upload, finalize, query) = (
        words.contains(&"upload"),
        words.contains(&"finalize"),
        words.contains(&"query"),
    );
    if !upload && !finalize && !query {
        return Err(ApiError::gemini_invalid(
            "X-Goog-Upload-Command must be upload, finalize, 'upload, finalize' or query.",
        ));
    }
    let limit = state.config.gemini_max_file_bytes;
    let chunk = if upload {
        read_body(headers, body, limit).await.map_err(|e| match e {
            BodyError::TooLarge => {
                ApiError::gemini_invalid(format!("File size exceeds the limit: {limit} bytes."))
            }
            BodyError::Read(m) => {
                ApiError::gemini_invalid(format!("Could not read the upload: {m}"))
            }
        })?
    } else {
        Bytes::new()
    };
    let mut store = lock(&state.gemini);
    let Some(up) = store.uploads.get_mut(&id) else {
        return Err(ApiError::gemini(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "No upload session with this upload_id (it was finalized, or never started).",
        ));
    };
    if query {
        let received = up.buf.len().to_string();
        return Ok(with_upload_headers(
            StatusCode::OK.into_response(),
            &[
                ("x-goog-upload-status", "active".into()),
                ("x-goog-upload-size-received", received),
            ],
        ));
    }
    if upload {
        let offset =
            upload_header(headers, "x-goog-upload-offset").and_then(|o| o.parse::<usize>().ok());
        if offset != Some(up.buf.len()) {
            let received = up.buf.len().to_string();
            let err = ApiError::gemini_invalid(format!(
                "X-Goog-Upload-Offset must be the bytes received so far ({received})."
            ));
            return Err(err
                .with_header(HeaderName::from_static("x-goog-upload-status"), "active")
                .with_header(
                    HeaderName::from_static("x-goog-upload-size-received"),
                    received,
                ));
        }
        if up.buf.len() + chunk.len() > limit {
            return Err(ApiError::gemini_invalid(format!(
                "File size exceeds the limit: {limit} bytes."
            )));
        }
        up.buf.extend_from_slice(&chunk);
    }
    if !finalize {
        let received = up.buf.len().to_string();
        return Ok(with_upload_headers(
            StatusCode::OK.into_response(),
            &[
                ("x-goog-upload-status", "active".into()),
                ("x-goog-upload-size-received", received),
            ],
        ));
    }
    if let Some(n) = up.declared.filter(|&n| n != up.buf.len()) {
        return Err(ApiError::gemini_invalid(format!(
            "The upload was finalized with {} bytes, but X-Goog-Upload-Header-Content-Length said {n}.",
            up.buf.len()
        )));
    }
    let Some(up) = store.uploads.remove(&id) else {
        return Err(internal("upload vanished"));
    };
    let file_id = match up.name {
        Some(n) if store.files.contains_key(&n) => {
            return Err(ApiError::gemini(
                StatusCode::CONFLICT,
                "ALREADY_EXISTS",
                format!("A file named files/{n} already exists."),
            ))
        }
        Some(n) => n,
        None => state.ids.gemini_file(),
    };
    let file = File {
        id: file_id.clone(),
        display_name: up.display_name,
        mime_type: up.mime_type,
        content: up.buf.freeze(),
        created: Utc::now(),
        source: FileSource::Uploaded,
    };
    let view = file.view(&state.base_url);
    store.add_file(file);
    let resp = Json(json!({"file": view})).into_response();
    Ok(with_upload_headers(
        resp,
        &[("x-goog-upload-status", "final".into())],
    ))
}

/// `GET /v1beta/files/{id}`, or `GET /v1beta/files/{id}:download?alt=media`.
pub(crate) async fn get_file_or_download(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    if name.contains(':') {
        return download_file(&state, &name, &uri);
    }
    let store = lock(&state.gemini);
    Ok(Json(store.file(&name)?.view(&state.base_url)).into_response())
}

/// `GET /download/v1beta/files/{id}:download?alt=media`
pub(crate) async fn download(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    download_file(&state, &name, &uri)
}

fn download_file(state: &Arc<AppState>, name: &str, uri: &Uri) -> Result<Response, ApiError> {
    let Some(id) = name.strip_suffix(":download") else {
        return Err(unknown_path(&Method::GET, uri.path()));
    };
    let pairs = query_pairs(uri.query());
    if query_get(&pairs, "alt") != Some("media") {
        return Err(ApiError::gemini_invalid(
            "Downloading a file needs ?alt=media.",
        ));
    }
    let store = lock(&state.gemini);
    let f = store.file(id)?;
    if f.source != FileSource::Generated {
        return Err(ApiError::gemini_invalid(format!(
            "files/{id} cannot be downloaded: only generated files (such as batch results) can be."
        )));
    }
    Ok((
        [(header::CONTENT_TYPE, f.mime_type.clone())],
        f.content.clone(),
    )
        .into_response())
}

/// `DELETE /v1beta/files/{id}`
pub(crate) async fn delete_file(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut store = lock(&state.gemini);
    store.file(&name)?;
    store.files.remove(&name);
    store.file_order.retain(|id| id != &name);
    Ok(Json(json!({})))
}

/// `GET /v1beta/files?pageSize=&pageToken=` (newest first).
pub(crate) async fn list_files(
    State(state): State<Arc<AppState>>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(uri.query());
    let size = page_size(&pairs, FILE_PAGE)?;
    let store = lock(&state.gemini);
    let ids: Vec<String> = store.file_order.iter().rev().cloned().collect();
    let (page, next) = cursor_page(&ids, &pairs, size)?;
    let files: Vec<Value> = page
        .iter()
        .filter_map(|id| store.files.get(id))
        .map(|f| f.view(&state.base_url))
        .collect();
    let mut out = Map::new();
    if !files.is_empty() {
        out.insert("files".into(), Value::Array(files));
    }
    if let Some(n) = next {
        out.insert("nextPageToken".into(), json!(n));
    }
    Ok(Json(Value::Object(out)))
}
