//! The GraphQL websocket (graphql-transport-ws, and the legacy graphql-ws): async-graphql-axum's
//! `GraphQLWebSocket` between a filtered input and a channel sink, so that we control what the
//! stock `GraphQLSubscription` handler does not: what an idle connection holds (a 512-byte read
//! buffer, no write buffer, no preallocated queue, a loop future holding only what it uses), a
//! `connection_init` deadline (4408), duplicate subscription ids (4409), the same nesting limits
//! as HTTP, the session's end, and a clean close on shutdown (1001).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::Data;
use async_graphql::http::WebSocketProtocols;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures_channel::mpsc;
use futures_util::SinkExt;
use futures_util::stream::{self, StreamExt};
use graphql_schema::Caller;
use tokio::sync::oneshot;

use crate::AppState;
use crate::guard;

/// Most subscriptions open at once on one connection.
const MAX_SUBSCRIPTIONS: usize = 100;
/// Largest incoming message.
const MAX_MESSAGE: usize = 64 * 1024;

/// The protocol the client asked for, read as async-graphql-axum's extractor reads it (which
/// keeps its value private): we need it to shape our own error messages.
fn wire_protocol(parts: &Parts) -> Option<WebSocketProtocols> {
    parts
        .headers
        .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|list| list.split(',').find_map(|p| p.trim().parse::<WebSocketProtocols>().ok()))
}

/// Upgrades `GET /graphql` to a websocket.
pub(crate) async fn upgrade(state: AppState, parts: &mut Parts) -> Response {
    let wire = wire_protocol(parts);
    let protocol = GraphQLProtocol::from_request_parts(parts, &state).await;
    let (Some(wire), Ok(protocol)) = (wire, protocol) else {
        return (
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Protocol must be graphql-transport-ws or graphql-ws",
        )
            .into_response();
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(parts, &state).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    upgrade
        .protocols([wire.sec_websocket_protocol()])
        // Client messages are small (a subscription's query); a larger one is read in steps
        // into a buffer reserved for its length. Each idle connection keeps this much.
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(socket, protocol, wire, state))
}

/// Reads the bearer token of a `connection_init` payload: `{"Authorization": "Bearer <t>"}`,
/// also accepted lower-case, under `headers`, or as `token`.
fn token_of(payload: &serde_json::Value) -> Option<String> {
    let candidates = [
        payload.get("Authorization"),
        payload.get("authorization"),
        payload
            .get("headers")
            .and_then(|h| h.get("Authorization").or_else(|| h.get("authorization"))),
        payload.get("token"),
    ];
    let raw = candidates.into_iter().flatten().find_map(|v| v.as_str())?;
    let raw = raw.trim();
    Some(
        raw.strip_prefix("Bearer ")
            .or_else(|| raw.strip_prefix("bearer "))
            .unwrap_or(raw)
            .trim()
            .to_owned(),
    )
}

enum Inspection {
    Forward,
    Reply(String),
    Close(u16, String),
}

fn error_message(protocol: WebSocketProtocols, id: &str, message: &str) -> String {
    let error =
        serde_json::json!({ "message": message, "extensions": { "code": "BAD_USER_INPUT" } });
    let payload = match protocol {
        WebSocketProtocols::GraphQLWS => serde_json::json!([error]),
        WebSocketProtocols::SubscriptionsTransportWS => error,
    };
    serde_json::json!({ "id": id, "type": "error", "payload": payload }).to_string()
}

/// Checks a client message before async-graphql sees it.
fn inspect(text: &str, protocol: WebSocketProtocols, active: &mut HashSet<String>) -> Inspection {
    // serde_json stops at 128 levels; async-graphql closes with 1002 on what does not decode.
    let Ok(message) = serde_json::from_str::<serde_json::Value>(text) else {
        return Inspection::Forward;
    };
    let kind = message.get("type").and_then(|t| t.as_str()).unwrap_or_default();
    let id = message.get("id").and_then(|i| i.as_str()).unwrap_or_default().to_owned();
    match kind {
        "subscribe" | "start" => {
            if active.contains(&id) {
                return Inspection::Close(4409, format!("Subscriber for {id} already exists"));
            }
            if active.len() >= MAX_SUBSCRIPTIONS {
                return Inspection::Close(4429, "Too many subscriptions".into());
            }
            let payload = message.get("payload");
            let query =
                payload.and_then(|p| p.get("query")).and_then(|q| q.as_str()).unwrap_or_default();
            let variables = payload.and_then(|p| p.get("variables")).cloned().unwrap_or_default();
            let checked = guard::check_query_text(query)
                .and_then(|()| guard::check_variables(&variables))
                .and_then(|()| match async_graphql::parser::parse_query(query) {
                    Ok(doc) => guard::check_aliases(&doc),
                    Err(_) => Ok(()),
                });
            if let Err(e) = checked {
                return Inspection::Reply(error_message(protocol, &id, &e.to_string()));
            }
            active.insert(id);
            Inspection::Forward
        }
        "complete" | "stop" => {
            active.remove(&id);
            Inspection::Forward
        }
        _ => Inspection::Forward,
    }
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

/// Subscription ids open on one connection, seen from both directions.
type Active = Arc<Mutex<HashSet<String>>>;

fn lock(active: &Active) -> std::sync::MutexGuard<'_, HashSet<String>> {
    active.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sets a connection up and returns its loop. Built outside the loop's future, so that the
/// future each idle connection keeps holds only what the loop uses (an `async fn` keeps room
/// for its arguments and for every local moved into the protocol machine as well).
fn serve(
    socket: WebSocket,
    protocol: GraphQLProtocol,
    wire_protocol: WebSocketProtocols,
    state: AppState,
) -> impl std::future::Future<Output = ()> + Send + use<> {
    state.metrics.websockets.fetch_add(1, Ordering::Relaxed);
    let (socket_sink, incoming) = socket.split();
    // Everything the protocol machine sends goes through this channel, so that this loop can
    // observe it and add its own close frames. futures' channel allocates per queued message:
    // an idle connection holds no preallocated slots.
    let (out_tx, out_rx) = mpsc::channel::<Message>(64);
    let sink = futures_util::sink::unfold(out_tx.clone(), |mut tx, message: Message| async move {
        tx.send(message).await.map(|()| tx).map_err(|_| axum::Error::new("websocket closed"))
    });
    let active: Active = Arc::default();
    let input = stream::unfold(
        (incoming, active.clone(), out_tx),
        move |(mut incoming, active, mut out)| async move {
            loop {
                let text = match incoming.next().await {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    // A close from the client, an error, or the end: the protocol machine ends too.
                    _ => return None,
                };
                let verdict = inspect(&text, wire_protocol, &mut lock(&active));
                match verdict {
                    Inspection::Forward => {
                        return Some((Ok(Message::Text(text.into())), (incoming, active, out)));
                    }
                    Inspection::Reply(reply) => {
                        if out.send(Message::Text(reply.into())).await.is_err() {
                            return None;
                        }
                    }
                    Inspection::Close(code, reason) => {
                        let _ = out.send(close(code, &reason)).await;
                        return None;
                    }
                }
            }
        },
    );
    let (session_tx, session_rx) = oneshot::channel();
    let sessions = state.services.sessions.clone();
    let on_init = move |payload: serde_json::Value| async move {
        let mut data = Data::default();
        let caller = match token_of(&payload) {
            None => Caller::anonymous(),
            Some(token) => match sessions.authenticate(&token).await {
                Ok((session, principal)) => {
                    let _ = session_tx.send(session.clone());
                    Caller { principal, session: Some(session), token: Some(token), client: None }
                }
                Err(e) => return Err(async_graphql::Error::new(e.to_string())),
            },
        };
        data.insert(caller);
        Ok(data)
    };
    let machine =
        GraphQLWebSocket::new_with_pair(sink, Box::pin(input), state.schema.clone(), protocol)
            .on_connection_init(on_init)
            .serve();
    run(
        Box::pin(machine),
        socket_sink,
        out_rx,
        active,
        session_rx,
        state.shutdown.clone(),
        Duration::from_secs(u64::from(state.ws_init_timeout_secs)),
        state.metrics.clone(),
    )
}

/// A connection's loop: forwards what the protocol machine sends, and closes the socket on an
/// initialisation timeout, at the session's end and on shutdown. Its parts come as arguments,
/// used in place: a struct would be moved into locals, and its room kept twice.
#[allow(clippy::too_many_arguments)]
async fn run(
    mut machine: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    mut socket_sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut out_rx: mpsc::Receiver<Message>,
    active: Active,
    mut session_rx: oneshot::Receiver<actors::session::SessionHandle>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    init_timeout: Duration,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let init_deadline = tokio::time::sleep(init_timeout);
    tokio::pin!(init_deadline);
    let mut session_ended: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
        Box::pin(std::future::pending());
    let (mut acked, mut session_known, mut machine_done) = (false, false, false);
    loop {
        tokio::select! {
            () = &mut machine, if !machine_done => machine_done = true,
            out = out_rx.next() => {
                let Some(message) = out else { break };
                match message {
                    Message::Text(text) => {
                        if text.starts_with("{\"type\":\"connection_ack\"") {
                            acked = true;
                        } else if (text.starts_with("{\"type\":\"complete\"") || text.starts_with("{\"type\":\"error\""))
                            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                            && let Some(id) = v.get("id").and_then(|i| i.as_str())
                        {
                            lock(&active).remove(id);
                        }
                        if socket_sink.send(Message::Text(text)).await.is_err() {
                            break;
                        }
                    }
                    Message::Close(frame) => {
                        // A refused `connection_init` is Forbidden in graphql-transport-ws.
                        let frame = frame.map(|f| if !acked && f.code == 1002 { CloseFrame { code: 4403, reason: f.reason } } else { f });
                        let _ = socket_sink.send(Message::Close(frame)).await;
                        break;
                    }
                    other => {
                        if socket_sink.send(other).await.is_err() {
                            break;
                        }
                    }
                }
            }
            () = &mut init_deadline, if !acked => {
                let _ = socket_sink.send(close(4408, "Connection initialisation timeout")).await;
                break;
            }
            session = &mut session_rx, if !session_known => {
                session_known = true;
                if let Ok(session) = session {
                    session_ended = Box::pin(async move { session.closed().await });
                }
            }
            () = &mut session_ended => {
                let _ = socket_sink.send(close(4401, "Unauthorized: the session has ended")).await;
                break;
            }
            _ = shutdown.changed() => {
                let _ = socket_sink.send(close(1001, "Server shutting down")).await;
                break;
            }
        }
    }
    let _ = socket_sink.close().await;
    metrics.websockets.fetch_sub(1, Ordering::Relaxed);
}
