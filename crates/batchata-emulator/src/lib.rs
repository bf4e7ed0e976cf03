//! A local, wire-faithful emulator of the Anthropic Message Batches API, the
//! OpenAI Files + Batch APIs and the Gemini API batch mode.
//!
//! It exists so the library, the CLI and their tests can run real batch
//! workloads — including failures — without network access or cost. It shares
//! no code with the library's provider clients: both sides are written from
//! the wire reference, so each catches the other's mistakes.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use batchata_emulator::{Emulator, EmulatorConfig, Endpoint, FaultKind};
//!
//! let emu = Emulator::start(
//!     EmulatorConfig::new().fail_first(Endpoint::AnthropicCreate, 1, FaultKind::Status429 { retry_after_ms: 50 }),
//! )
//! .await?;
//! // Point ANTHROPIC_BASE_URL at emu.anthropic_base_url(), OPENAI_BASE_URL at
//! // emu.openai_base_url(), GOOGLE_GEMINI_BASE_URL at emu.gemini_base_url().
//! let stats = emu.stats();
//! assert_eq!(stats.calls_to("anthropic.create"), 0);
//! emu.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Behaviour is set by [`EmulatorConfig`]; what happened is reported by
//! [`EmulatorStats`], in-process via [`EmulatorHandle::stats`] or over HTTP
//! at `GET /_emulator/stats`. A running emulator can also be changed, from
//! Rust or over HTTP (`POST`, no body; these control endpoints are never
//! faulted, delayed or counted):
//!
//! | HTTP | Rust | effect |
//! |---|---|---|
//! | `/_emulator/forget` | [`EmulatorHandle::forget_batches`] | every batch that exists now becomes unknown: 404 in the provider's envelope, gone from lists |
//! | `/_emulator/revoke-keys[?status=403]` | [`EmulatorHandle::revoke_keys`], [`EmulatorHandle::revoke_keys_as`] | every later provider call answers 401 (or 403) in the provider's envelope |
//! | `/_emulator/restore-keys` | [`EmulatorHandle::restore_keys`] | keys are accepted again |
//! | `/_emulator/reset` | [`EmulatorHandle::reset`] | a fresh emulator: no batches, files, counters or fault progress |
//!
//! Faults that need no call at run time are configuration: [`FaultKind`]s
//! for the first calls to an endpoint (`drop-after` loses the answer to a
//! call that was carried out), random rates, expiry, and
//! [`EmulatorConfig::forget_batches_after`]. Only loopback (127.0.0.1) is
//! ever bound.

#![warn(missing_docs)]

mod answers;
mod anthropic;
mod config;
mod conn;
mod error;
mod gemini;
mod ids;
mod lifecycle;
mod openai;
mod page;
mod pdf;
mod reject;
mod request;
mod schema;
mod server;
mod stats;
mod text;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use answers::answer_tag;
pub use config::{
    EmulatorConfig, Endpoint, FailFirst, FaultKind, KeyRejection, ANTHROPIC_MAX_BYTES,
    ANTHROPIC_MAX_REQUESTS, GEMINI_MAX_FILE_BYTES, GEMINI_MAX_INLINE_BYTES, OPENAI_MAX_FILE_BYTES,
    OPENAI_MAX_REQUESTS,
};
pub use reject::REJECT_MARKER;
pub use stats::{BatchSummary, EmulatorStats};

use conn::{ConnHandle, KillableListener};
use server::AppState;

/// Entry point: starts emulator servers.
#[derive(Debug, Clone, Copy)]
pub struct Emulator;

impl Emulator {
    /// Starts an emulator on a free port of 127.0.0.1.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<EmulatorHandle> {
        Self::bind(config, 0).await
    }

    /// Starts an emulator on `127.0.0.1:port` (`0` picks a free port).
    pub async fn bind(config: EmulatorConfig, port: u16) -> std::io::Result<EmulatorHandle> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let state = Arc::new(AppState::new(config.normalized(), base_url));
        let app = server::router(state.clone()).into_make_service_with_connect_info::<ConnHandle>();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(KillableListener::new(listener), app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(err) = served {
                tracing::warn!("emulator server stopped: {err}");
            }
        });
        tracing::info!("batchata emulator listening on http://{addr}");
        Ok(EmulatorHandle {
            addr,
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// Serves an emulator on `127.0.0.1:port` until Ctrl+C, then shuts down.
///
/// This is what `batchata emulate --port P` runs; state lives in the memory
/// of this process.
pub async fn serve(config: EmulatorConfig, port: u16) -> std::io::Result<()> {
    let handle = Emulator::bind(config, port).await?;
    handle
        .run_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(())
}

/// A running emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct EmulatorHandle {
    addr: SocketAddr,
    state: Arc<AppState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl EmulatorHandle {
    /// The bound address (always 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Anthropic base URL, `http://127.0.0.1:PORT` — like
    /// `ANTHROPIC_BASE_URL`, request paths carry `/v1`.
    pub fn anthropic_base_url(&self) -> String {
        self.base_url()
    }

    /// The OpenAI base URL, `http://127.0.0.1:PORT/v1` — like `OPENAI_BASE_URL`.
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.base_url())
    }

    /// The Gemini base URL, `http://127.0.0.1:PORT` — like
    /// `GOOGLE_GEMINI_BASE_URL`, request paths carry the API version
    /// (`/v1beta/...`, and `/upload/v1beta/...` for uploads).
    pub fn gemini_base_url(&self) -> String {
        self.base_url()
    }

    /// The URL of the stats endpoint, `http://127.0.0.1:PORT/_emulator/stats`.
    pub fn stats_url(&self) -> String {
        format!("{}/_emulator/stats", self.base_url())
    }

    /// The configuration in effect.
    pub fn config(&self) -> &EmulatorConfig {
        &self.state.config
    }

    /// Calls, faults and batches so far (same as `GET /_emulator/stats`).
    pub fn stats(&self) -> EmulatorStats {
        self.state.stats()
    }

    /// Makes every batch that exists now unknown to its provider, as if the
    /// provider had lost or purged it (same as `POST /_emulator/forget`):
    /// retrieve, cancel, results and delete of those ids answer 404 with the
    /// provider's not-found envelope, lists leave them out, and an OpenAI
    /// batch's output and error files go with it. Batches created afterwards
    /// behave normally. [`stats`](Self::stats) keeps listing the forgotten
    /// batches, with `forgotten: true`. Returns how many batches were still
    /// known.
    pub fn forget_batches(&self) -> usize {
        self.state.forget_batches()
    }

    /// Stops accepting every API key: each later provider call answers 401
    /// with the provider's authentication envelope, as when a key is revoked
    /// mid-run (same as `POST /_emulator/revoke-keys`). Undo with
    /// [`restore_keys`](Self::restore_keys).
    pub fn revoke_keys(&self) {
        self.state
            .set_key_rejection(Some(KeyRejection::Unauthorized));
    }

    /// Like [`revoke_keys`](Self::revoke_keys), answering with `rejection`:
    /// [`KeyRejection::Forbidden`] gives 403 permission errors instead
    /// (same as `POST /_emulator/revoke-keys?status=403`).
    pub fn revoke_keys_as(&self, rejection: KeyRejection) {
        self.state.set_key_rejection(Some(rejection));
    }

    /// Accepts keys again after [`revoke_keys`](Self::revoke_keys) (same as
    /// `POST /_emulator/restore-keys`); the configured
    /// [`api_key`](EmulatorConfig::api_key), if any, applies as before.
    pub fn restore_keys(&self) {
        self.state.set_key_rejection(None);
    }

    /// Forgets all batches, files, counters and fault progress, and accepts
    /// keys again (same as `POST /_emulator/reset`).
    pub fn reset(&self) {
        self.state.reset();
    }

    /// Stops accepting connections, lets in-flight requests finish (for up to
    /// 5 seconds) and returns once the server has stopped.
    pub async fn shutdown(mut self) {
        self.stop(Duration::from_secs(5)).await;
    }

    /// Serves until `signal` completes, then shuts down.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) {
        let stopped = match self.task.as_mut() {
            Some(task) => {
                tokio::select! {
                    _ = task => true,
                    _ = signal => false,
                }
            }
            None => true,
        };
        if stopped {
            self.task = None;
        }
        self.stop(Duration::from_secs(5)).await;
    }

    async fn stop(&mut self, grace: Duration) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(grace, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
