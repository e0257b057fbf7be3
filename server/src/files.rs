//! Downloads of a demand's files: one attachment, or all of them as one zip streamed while it
//! is written. Both take the same bearer token as the API and the same access decision as the
//! demand's content.

use std::io::Write;

use actors::access::authorize;
use actors::demands::DemandView;
use actors::ids::DemandId;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use crate::AppState;
use crate::feeds::failure;
use crate::routes::{ClientAddr, caller};

/// The demand, if the caller may read its content.
async fn readable(
    state: &AppState,
    headers: &HeaderMap,
    client: ClientAddr,
    id: &str,
) -> Result<DemandView, Response> {
    let caller = caller(state, headers, client).await?;
    let not_found = || {
        (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({ "code": "NOT_FOUND" })))
            .into_response()
    };
    let id: DemandId = id.parse().map_err(|_| not_found())?;
    let view = state.services.demands.get(id).await.map_err(|e| failure(&e))?;
    let roles = view.content_roles();
    authorize(&caller.principal, view.see(&roles)).map_err(|e| failure(&e))?;
    Ok(view)
}

/// `attachment; filename*=UTF-8''…`, percent-encoded: no quote or newline from a file name
/// reaches the header.
fn disposition(filename: &str) -> HeaderValue {
    let encoded: String = filename
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!("attachment; filename*=UTF-8''{encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// `GET /api/demands/{id}/attachments/{upload}`; `.../attachments.zip` is every file at once.
pub(crate) async fn attachment(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    let view = match readable(&state, &headers, client, &id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (attachment, file) = match state.services.demands.open_attachment(&view, &file) {
        Ok(found) => found,
        Err(e) => return failure(&e),
    };
    let read = tokio::task::spawn_blocking(move || {
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut content).map(|_| content)
    })
    .await;
    let Ok(Ok(content)) = read else {
        tracing::error!(demand = %id, "attachment unreadable");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let content_type = HeaderValue::from_str(&attachment.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition(&attachment.filename)),
            (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        content,
    )
        .into_response()
}

/// `GET /api/demands/{id}/attachments.zip`: every attachment of the demand as one zip,
/// written on a blocking thread and sent as it is written.
pub(crate) async fn attachments_zip(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let view = match readable(&state, &headers, client, &id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let services = state.services.clone();
    let demand = view.demand.id;
    tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter { tx: tx.clone(), buffer: Vec::with_capacity(CHUNK) };
        let written = services.demands.write_zip(&view, &mut writer).and_then(|()| {
            writer
                .flush()
                .map_err(|e| actors::demands::model::DemandError::Unavailable(e.to_string()))
        });
        if let Err(e) = written {
            tracing::warn!(%demand, error = %e, "attachments zip cut short");
            // The client sees a broken download rather than a silently partial zip.
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
        );
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/zip")),
            (header::CONTENT_DISPOSITION, disposition(&format!("demand-{demand}.zip"))),
            (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

const CHUNK: usize = 64 * 1024;

/// A `Write` that sends what is written, in chunks, to an async body.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buffer: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

/// `GET /api/bundle.zip` (administrators): every workflow and form as an application bundle.
pub(crate) async fn bundle(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
) -> Response {
    let caller = match caller(&state, &headers, client).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(e) = authorize(&caller.principal, actors::access::Action::ManageForms) {
        return failure(&e);
    }
    match state.services.demands.export_bundle().await {
        Ok(zip) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("application/zip")),
                (header::CONTENT_DISPOSITION, disposition("guichet-bundle.zip")),
                (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
            ],
            zip,
        )
            .into_response(),
        Err(e) => failure(&e),
    }
}
