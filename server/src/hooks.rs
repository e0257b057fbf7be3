//! `POST /api/demands/{id}/hooks/{name}`: external systems trigger the global actions of
//! demands' workflows that listen on a webhook (w.c.s. "webhook" triggers), authenticated as an
//! account of the hook's roles.

use actors::ids::DemandId;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::feeds::failure;
use crate::routes::{ClientAddr, caller};

/// Largest body a workflow webhook takes.
const MAX_HOOK_BODY: usize = 64 * 1024;

/// `POST /api/demands/{id}/hooks/{name}`: a system (an account of the hook's roles, with its
/// bearer token) triggers the global action of the demand's workflow listening on `name`,
/// posting a JSON object (or nothing) that the action's items read as `webhook`.
pub(crate) async fn demand_hook(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let caller = match caller(&state, &headers, client).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let bad = |message: String| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "code": "BAD_USER_INPUT", "message": message })),
        )
            .into_response()
    };
    let Ok(id) = id.parse::<DemandId>() else {
        return (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({ "code": "NOT_FOUND" })))
            .into_response();
    };
    if body.len() > MAX_HOOK_BODY {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            axum::Json(serde_json::json!({
                "code": "BAD_USER_INPUT",
                "message": format!("at most {MAX_HOOK_BODY} bytes"),
            })),
        )
            .into_response();
    }
    let payload = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Object(o)) => o,
            Ok(_) => return bad("the body is a JSON object".into()),
            Err(e) => return bad(format!("the body is not JSON: {e}")),
        }
    };
    match state.services.demands.call_hook(id, &caller.principal, &name, payload).await {
        Ok(view) => axum::Json(serde_json::json!({
            "err": 0,
            "status": view.demand.status,
        }))
        .into_response(),
        Err(e) => failure(&e),
    }
}
