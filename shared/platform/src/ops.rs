//! The ops HTTP server: `/healthz` (alive, checks nothing outside the process), `/readyz`
//! (dependencies reachable and not draining), `/metrics` (Prometheus).

use axum::{Router, extract::State, http::StatusCode, routing::get};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize)]
pub struct OpsSettings {
    #[serde(default = "default_host")]
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
}

fn default_host() -> String {
    "127.0.0.1".into()
}

/// The process-wide Prometheus recorder (the `metrics` facade is global by design).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test process); keep ours readable.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

pub type ReadyCheck = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

#[derive(Clone)]
struct OpsState {
    ready: ReadyCheck,
    metrics: PrometheusHandle,
}

pub async fn bind(settings: &OpsSettings) -> anyhow::Result<TcpListener> {
    Ok(TcpListener::bind((settings.host.as_str(), settings.port)).await?)
}

/// Serves until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    ready: ReadyCheck,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let state = OpsState {
        ready,
        metrics: metrics_handle(),
    };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(|State(s): State<OpsState>| async move { s.metrics.render() }),
        )
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

async fn readyz(State(s): State<OpsState>) -> (StatusCode, String) {
    match (s.ready)().await {
        Ok(()) => (StatusCode::OK, "ready".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}
