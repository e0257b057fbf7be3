//! `POST /api/reception/calls`: the telephony system says a call rings on an agent's line
//! (`{"caller": "+33…", "callee": "<line>"}`), authenticated by the reception secret. The agents
//! of that line see the caller's accounts and recent demands at once (subscription
//! `incomingCalls`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::AppState;
use crate::feeds::failure;

#[derive(Deserialize)]
pub(crate) struct Call {
    caller: String,
    callee: String,
}

pub(crate) async fn incoming_call(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(expected) = state.reception_token.as_deref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !actors::reception::token_matches(expected, given) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({ "code": "UNAUTHENTICATED" })),
        )
            .into_response();
    }
    let call: Call = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(
                    serde_json::json!({ "code": "BAD_USER_INPUT", "message": e.to_string() }),
                ),
            )
                .into_response();
        }
    };
    match state.services.reception.incoming(&call.caller, &call.callee).await {
        Ok(c) => (
            StatusCode::ACCEPTED,
            axum::Json(serde_json::json!({ "line": c.line, "matches": c.accounts.len() })),
        )
            .into_response(),
        Err(e) => failure(&e),
    }
}
