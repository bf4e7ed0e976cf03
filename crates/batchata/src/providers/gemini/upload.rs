//! The Files API's resumable upload of a batch's input file: a session is
//! started, the JSONL body (built once, `create.rs`) is streamed from its
//! temporary file to the upload URL Google returns
//! (moved onto the configured host), and a transfer that fails after its
//! retries starts over once in a new session.

use bytes::Bytes;

use super::request::JSONL_MIME;
use super::response::UploadedFile;
use super::{GeminiProvider, CHUNK_BYTES};
use crate::error::{Error, Result};
use crate::providers::body::SpooledBody;
use crate::providers::http::Attempts;

impl GeminiProvider {
    /// Uploads the input file with the resumable protocol; returns its name.
    /// A transfer that fails after its retries starts over once, in a new
    /// upload session.
    pub(super) async fn upload(&self, body: &SpooledBody, display: &str) -> Result<String> {
        let mut attempt = 0;
        loop {
            match self.upload_once(body, display).await {
                Err(e) if attempt == 0 && e.is_retryable() => {
                    tracing::warn!(error = %e, "upload of the batch input file failed; starting a new upload");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn upload_once(&self, body: &SpooledBody, display: &str) -> Result<String> {
        let len = body.len();
        let start_url = self.http.url(&format!("/upload/{}/files", self.version));
        let meta = serde_json::to_vec(&serde_json::json!({
            "file": {"displayName": format!("{display}-input"), "mimeType": JSONL_MIME}
        }))
        .map_err(|e| Error::Parse(format!("upload metadata: {e}")))?;
        let meta = Bytes::from(meta);
        let resp = self
            .http
            .send("start the input file upload", |c| {
                c.post(&start_url)
                    .header("content-type", "application/json")
                    .header("X-Goog-Upload-Protocol", "resumable")
                    .header("X-Goog-Upload-Command", "start")
                    .header("X-Goog-Upload-Header-Content-Length", len)
                    .header("X-Goog-Upload-Header-Content-Type", JSONL_MIME)
                    .body(meta.clone())
            })
            .await?;
        let given = resp
            .headers()
            .get("x-goog-upload-url")
            .and_then(|v| v.to_str().ok())
            .map(String::from)
            .ok_or_else(|| Error::Http {
                status: None,
                message:
                    "gemini start the input file upload: the answer has no x-goog-upload-url header"
                        .into(),
                retryable: true,
            })?;
        let upload_url = self.on_base_url(&given)?;
        const WHAT: &str = "upload the batch input file";
        let resp = self
            .http
            .send_streamed(
                WHAT,
                Attempts::Repeatable,
                |c, stream| {
                    c.post(&upload_url)
                        .header("X-Goog-Upload-Command", "upload, finalize")
                        .header("X-Goog-Upload-Offset", "0")
                        .header("content-length", len)
                        .body(stream)
                },
                |tx| body.send(tx, CHUNK_BYTES),
            )
            .await?;
        let status = resp
            .headers()
            .get("x-goog-upload-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        if status.as_deref() != Some("final") {
            return Err(Error::Http {
                status: None,
                message: format!(
                    "gemini {WHAT}: the upload did not finish (x-goog-upload-status: {})",
                    status.as_deref().unwrap_or("absent")
                ),
                retryable: true,
            });
        }
        let file: UploadedFile = self.http.decode(WHAT, resp).await?;
        if file.file.size_bytes != 0 && file.file.size_bytes != len {
            tracing::warn!(file = %file.file.name, sent = len, stored = file.file.size_bytes, "Gemini stored a different size than was uploaded");
        }
        Ok(file.file.name)
    }

    /// An upload URL moved onto the configured base URL's scheme and host
    /// (as the SDK does), so the key never goes to another host.
    pub(super) fn on_base_url(&self, given: &str) -> Result<String> {
        let bad = |why: String| Error::Http {
            status: None,
            message: format!("gemini: unusable upload URL '{given}': {why}"),
            retryable: false,
        };
        let mut url = reqwest::Url::parse(given).map_err(|e| bad(e.to_string()))?;
        let base = reqwest::Url::parse(self.http.base_url()).map_err(|e| bad(e.to_string()))?;
        url.set_scheme(base.scheme())
            .map_err(|_| bad("scheme".into()))?;
        url.set_host(base.host_str())
            .map_err(|e| bad(e.to_string()))?;
        url.set_port(base.port()).map_err(|_| bad("port".into()))?;
        Ok(url.to_string())
    }
}
