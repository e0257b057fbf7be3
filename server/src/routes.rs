//! HTTP routes: GraphQL over HTTP (POST; GET for queries only), the websocket upgrade on the same
//! path, GraphiQL for browsers, `/healthz` and `/metrics`, and the read-only feeds of `feeds`
//! (iCalendar, data sources).

use std::time::Instant;

use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::OperationType;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use graphql_schema::Caller;
use graphql_schema::error::ensure_code;
use serde::Deserialize;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::guard::{self, GuardError};
use crate::{AppState, ws};

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 256 * 1024;

/// The router of the whole server.
pub fn router(state: AppState, cors_origins: &[String]) -> Router {
    let router = Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/agendas/{file}", get(crate::feeds::agenda_calendar))
        .route("/calendar/{file}", get(crate::feeds::personal_calendar))
        .route("/api/agendas/{slug}/datetimes", get(crate::feeds::agenda_datetimes))
        .route("/api/demands/{id}/attachments.zip", get(crate::files::attachments_zip))
        .route("/api/bundle.zip", get(crate::files::bundle))
        .route("/api/demands/{id}/hooks/{name}", axum::routing::post(crate::hooks::demand_hook))
        .route("/api/reception/calls", axum::routing::post(crate::reception::incoming_call))
        .route("/api/demands/{id}/attachments/{file}", get(crate::files::attachment))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state);
    match cors(cors_origins) {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

/// Cross-origin access for browser front ends on other origins.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<&str> = origins.iter().map(|o| o.trim()).filter(|o| !o.is_empty()).collect();
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.contains(&"*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
            .max_age(std::time::Duration::from_secs(3600)),
    )
}

/// A JSON error response in the GraphQL shape, with a code.
fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body =
        serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.to_string(),
    )
        .into_response()
}

fn bad_request(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", message)
}

/// The peer address of a request, when the server was started with connection info: it keys
/// per-client rate limits (tracking-code lookups).
pub(crate) struct ClientAddr(Option<String>);

impl ClientAddr {
    fn of(extensions: &axum::http::Extensions) -> Self {
        Self(
            extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::of(&parts.extensions))
    }
}

type Parts = (
    async_graphql::Request,
    Option<async_graphql::parser::types::ExecutableDocument>,
    Option<String>,
);

fn too_large(limit: usize) -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "BAD_USER_INPUT",
        &format!("the request body exceeds {limit} bytes"),
    )
}

async fn json_request(body: axum::body::Body) -> Result<Parts, Response> {
    let body = axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|_| too_large(BODY_LIMIT))?;
    // serde_json stops at 128 levels of nesting, so this cannot overflow the stack.
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| bad_request(&format!("malformed JSON body: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(bad_request("the body must be one JSON object (batches are not supported)"));
    };
    let Some(query) = object.get("query").and_then(|q| q.as_str()) else {
        return Err(bad_request("the body needs a `query` string"));
    };
    let variables = object.get("variables").cloned().unwrap_or(serde_json::Value::Null);
    let doc = check(query, &variables).map_err(|e| bad_request(&e.to_string()))?;
    let operation =
        operation_name(object.get("operationName").and_then(|n| n.as_str()), doc.as_ref());
    let request: async_graphql::Request = serde_json::from_value(value)
        .map_err(|e| bad_request(&format!("malformed GraphQL request: {e}")))?;
    Ok((request, doc, operation))
}

/// Largest multipart request: one file of the largest size, and its operations.
pub const MULTIPART_LIMIT: usize =
    actors::demands::attachments::MAX_UPLOAD_BYTES as usize + BODY_LIMIT;
/// Most files in one request.
const MAX_FILES: usize = 4;

async fn multipart_request(content_type: &str, body: axum::body::Body) -> Result<Parts, Response> {
    let body = axum::body::to_bytes(body, MULTIPART_LIMIT)
        .await
        .map_err(|_| too_large(MULTIPART_LIMIT))?;
    let options = async_graphql::http::MultipartOptions::default()
        .max_file_size(actors::demands::attachments::MAX_UPLOAD_BYTES as usize)
        .max_num_files(MAX_FILES);
    let request = async_graphql::http::receive_body(
        Some(content_type),
        futures_util::io::Cursor::new(body),
        options,
    )
    .await
    .map_err(|e| bad_request(&format!("malformed multipart GraphQL request: {e}")))?;
    // The same guards as JSON requests: operations are as small and as shallow.
    if request.query.len() > BODY_LIMIT {
        return Err(too_large(BODY_LIMIT));
    }
    let variables = serde_json::to_value(&request.variables).unwrap_or_default();
    let doc = check(&request.query, &variables).map_err(|e| bad_request(&e.to_string()))?;
    let operation = operation_name(request.operation_name.as_deref(), doc.as_ref());
    Ok((request, doc, operation))
}

/// Finds the caller of a request from its bearer token.
pub(crate) async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    client: ClientAddr,
) -> Result<Caller, Response> {
    let mut caller = caller_of_token(state, headers).await?;
    caller.client = client.0;
    Ok(caller)
}

async fn caller_of_token(state: &AppState, headers: &HeaderMap) -> Result<Caller, Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(Caller::anonymous()) };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    let Some(token) = token.map(str::trim) else {
        return Err(error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "expected `Authorization: Bearer <token>`",
        ));
    };
    match state.services.sessions.authenticate(token).await {
        Ok((session, principal)) => Ok(Caller {
            principal,
            session: Some(session),
            token: Some(token.to_owned()),
            client: None,
        }),
        Err(e) => {
            let code = actors::HasErrorCode::code(&e);
            let status = if code == actors::ErrorCode::Unauthenticated {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            Err(error_response(status, code.as_str(), &e.to_string()))
        }
    }
}

fn wants_graphql_response(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/graphql-response+json"))
}

/// Checks a request's text and variables, then parses it once to count aliases; the parsed
/// document is handed to the executor.
fn check(
    query: &str,
    variables: &serde_json::Value,
) -> Result<Option<async_graphql::parser::types::ExecutableDocument>, GuardError> {
    guard::check_query_text(query)?;
    guard::check_variables(variables)?;
    match async_graphql::parser::parse_query(query) {
        Ok(doc) => {
            guard::check_aliases(&doc)?;
            Ok(Some(doc))
        }
        // Parse errors are reported by the executor, with their position.
        Err(_) => Ok(None),
    }
}

/// The name an operation is counted under: the requested one, or the document's only one.
fn operation_name(
    request_name: Option<&str>,
    doc: Option<&async_graphql::parser::types::ExecutableDocument>,
) -> Option<String> {
    if let Some(name) = request_name {
        return Some(name.to_owned());
    }
    let doc = doc?;
    let mut names = doc.operations.iter().map(|(name, _)| name);
    match (names.next(), names.next()) {
        (Some(only), None) => only.map(|n| n.to_string()),
        _ => None,
    }
}

async fn execute(
    state: &AppState,
    headers: &HeaderMap,
    request: async_graphql::Request,
    caller: Caller,
    operation: Option<String>,
) -> Response {
    let started = Instant::now();
    let mut response = state.schema.execute(request.data(caller)).await;
    // Parse and validation errors have no path and no code; the executor ran nothing.
    let request_error = !response.errors.is_empty()
        && response.errors.iter().all(|e| {
            e.path.is_empty() && e.extensions.as_ref().is_none_or(|x| x.get("code").is_none())
        })
        && matches!(response.data, async_graphql::Value::Null);
    response.errors = response.errors.into_iter().map(ensure_code).collect();
    let codes: Vec<String> = response
        .errors
        .iter()
        .filter_map(|e| {
            e.extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .map(|c| c.to_string().trim_matches('"').to_owned())
        })
        .collect();
    state.metrics.record(operation.as_deref(), started.elapsed(), &codes);
    let status = if request_error { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let content_type = if wants_graphql_response(headers) {
        "application/graphql-response+json"
    } else {
        "application/json"
    };
    match serde_json::to_string(&response) {
        Ok(body) => {
            (status, [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], body)
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "response serialisation failed");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                "internal error",
            )
        }
    }
}

/// `POST /graphql`: an `application/json` body, or a `multipart/form-data` body carrying files
/// (the GraphQL multipart request spec: `operations`, `map`, then the files). Tokens travel
/// in a header, never in a cookie, so a cross-site form cannot act for anyone.
async fn graphql_post(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let (request, doc, operation) = match media.as_str() {
        "application/json" => match json_request(body).await {
            Ok(parts) => parts,
            Err(response) => return response,
        },
        "multipart/form-data" => match multipart_request(&content_type, body).await {
            Ok(parts) => parts,
            Err(response) => return response,
        },
        _ => {
            return error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "BAD_USER_INPUT",
                "send GraphQL requests as application/json (multipart/form-data with files)",
            );
        }
    };
    let mut request = request;
    // The document was parsed to check it: the executor need not parse it again.
    if let Some(doc) = doc {
        request.set_parsed_query(doc);
    }
    let caller = match caller(&state, &headers, client).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    execute(&state, &headers, request, caller, operation).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
}

/// `GET /graphql`: the websocket upgrade, GraphiQL for browsers, or a query in the URL.
async fn graphql_get(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let (mut parts, _) = request.into_parts();
    let is_upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if is_upgrade {
        return ws::upgrade(state, &mut parts).await;
    }
    let params = Query::<GetParams>::from_request_parts(&mut parts, &state).await;
    let params = match params {
        Ok(Query(p)) => p,
        Err(_) => return bad_request("malformed query string"),
    };
    let Some(query) = params.query else {
        let html = parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
        if html {
            return Html(
                GraphiQLSource::build()
                    .endpoint("/graphql")
                    .subscription_endpoint("/graphql")
                    .finish(),
            )
            .into_response();
        }
        return bad_request("GET /graphql needs a `query` parameter");
    };
    let variables: serde_json::Value =
        match params.variables.as_deref().map(serde_json::from_str).transpose() {
            Ok(v) => v.unwrap_or(serde_json::Value::Null),
            Err(e) => return bad_request(&format!("malformed variables: {e}")),
        };
    let doc = match check(&query, &variables) {
        Ok(doc) => doc,
        Err(e) => return bad_request(&e.to_string()),
    };
    // Mutations change state: never over GET, which links and prefetchers can trigger.
    let ty = doc.as_ref().and_then(|d| guard::operation_type(d, params.operation_name.as_deref()));
    if matches!(ty, Some(OperationType::Mutation | OperationType::Subscription)) {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_USER_INPUT",
            "only queries may be sent with GET; use POST",
        );
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let operation = operation_name(params.operation_name.as_deref(), doc.as_ref());
    let mut request = async_graphql::Request::new(query);
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    request.variables = async_graphql::Variables::from_json(variables);
    if let Some(doc) = doc {
        request.set_parsed_query(doc);
    }
    let caller = match caller(&state, &parts.headers, ClientAddr::of(&parts.extensions)).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    execute(&state, &parts.headers, request, caller, operation).await
}

/// 200 once the database answers.
async fn healthz(State(state): State<AppState>) -> Response {
    let ping =
        tokio::time::timeout(std::time::Duration::from_secs(2), state.services.store.ping()).await;
    match ping {
        Ok(Ok(())) if !state.is_shutting_down() => (StatusCode::OK, "ok\n").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "unavailable\n").into_response(),
    }
}

async fn metrics(State(state): State<AppState>, method: Method) -> Response {
    if method != Method::GET {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}
