//! A Rust client of Guichet's GraphQL API, used by the end-to-end tests and by `guichet-load`.
//! Its contract is `graphql-schema/schema.graphql`.
//!
//! - [`GraphqlClient`]: GraphQL over HTTP (`POST /graphql`, JSON), with a bearer token.
//! - [`WsClient`]: graphql-transport-ws (or the legacy graphql-ws) over a real websocket.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// HTTP transport failed.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// Websocket transport failed.
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server answered something unexpected.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Nothing arrived in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

/// A GraphQL response over HTTP.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The JSON body (`Null` when it was not JSON).
    pub body: Value,
}

impl Response {
    /// `data`, or `Null`.
    pub fn data(&self) -> &Value {
        self.body.get("data").unwrap_or(&Value::Null)
    }

    /// The `extensions.code` of the first error, if any.
    pub fn error_code(&self) -> Option<&str> {
        self.body.get("errors")?.get(0)?.get("extensions")?.get("code")?.as_str()
    }

    /// True when the response has no error.
    pub fn is_ok(&self) -> bool {
        self.status == 200
            && self.body.get("errors").is_none_or(|e| e.as_array().is_some_and(|a| a.is_empty()))
    }
}

/// GraphQL over HTTP.
#[derive(Debug, Clone)]
pub struct GraphqlClient {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl GraphqlClient {
    /// A client of the server at `base` (`http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Self { http, url: format!("{}/graphql", base.trim_end_matches('/')), token: None }
    }

    /// The same client, authenticated by `token`.
    pub fn with_token(&self, token: &str) -> Self {
        Self { http: self.http.clone(), url: self.url.clone(), token: Some(token.to_owned()) }
    }

    /// The bearer token, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Sends a query or mutation.
    pub async fn request(&self, query: &str, variables: Value) -> Result<Response, ClientError> {
        self.post_json(&json!({ "query": query, "variables": variables })).await
    }

    /// Sends any JSON body as `application/json`.
    pub async fn post_json(&self, body: &Value) -> Result<Response, ClientError> {
        let mut req = self.http.post(&self.url).json(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        Ok(Response { status, body })
    }

    /// The underlying HTTP client and URL, for requests outside the GraphQL shape.
    pub fn raw(&self) -> (&reqwest::Client, &str) {
        (&self.http, &self.url)
    }

    /// Registers a citizen and returns a client signed in as them, with their id.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        first: &str,
        last: &str,
    ) -> Result<(Self, String), ClientError> {
        let r = self
            .request(
                "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }",
                json!({ "input": { "email": email, "password": password, "firstName": first, "lastName": last } }),
            )
            .await?;
        let token = r.data()["register"]["token"]
            .as_str()
            .ok_or_else(|| ClientError::Protocol(format!("register: {}", r.body)))?;
        let id = r.data()["register"]["user"]["id"].as_str().unwrap_or_default().to_owned();
        Ok((self.with_token(token), id))
    }

    /// Signs in and returns a client authenticated as that account.
    pub async fn login(&self, email: &str, password: &str) -> Result<Self, ClientError> {
        let r = self
            .request(
                "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
                json!({ "e": email, "p": password }),
            )
            .await?;
        let token = r.data()["login"]["token"]
            .as_str()
            .ok_or_else(|| ClientError::Protocol(format!("login: {}", r.body)))?;
        Ok(self.with_token(token))
    }
}

/// The websocket sub-protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsProtocol {
    /// graphql-transport-ws (current).
    TransportWs,
    /// graphql-ws (legacy subscriptions-transport-ws).
    LegacyGraphqlWs,
}

impl WsProtocol {
    fn header(self) -> &'static str {
        match self {
            WsProtocol::TransportWs => "graphql-transport-ws",
            WsProtocol::LegacyGraphqlWs => "graphql-ws",
        }
    }
}

/// A GraphQL websocket connection.
pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    protocol: WsProtocol,
}

/// What the server sent.
#[derive(Debug, Clone, PartialEq)]
pub enum WsEvent {
    /// A JSON message.
    Message(Value),
    /// The server closed the connection with this code and reason.
    Closed(u16, String),
}

impl WsClient {
    /// Opens a websocket to `base` without sending `connection_init`.
    pub async fn open(base: &str, protocol: WsProtocol) -> Result<Self, ClientError> {
        let url = format!("{}/graphql", base.trim_end_matches('/').replacen("http", "ws", 1));
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol.header()));
        // Small buffers: the load tool opens thousands of these.
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let (socket, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(config), false).await?;
        Ok(Self { socket, protocol })
    }

    /// Opens a websocket and completes `connection_init` with an optional bearer token.
    pub async fn connect(
        base: &str,
        protocol: WsProtocol,
        token: Option<&str>,
    ) -> Result<Self, ClientError> {
        let mut client = Self::open(base, protocol).await?;
        let payload = match token {
            Some(t) => json!({ "Authorization": format!("Bearer {t}") }),
            None => json!({}),
        };
        client.send(json!({ "type": "connection_init", "payload": payload })).await?;
        match client.next(Duration::from_secs(10)).await? {
            WsEvent::Message(m) if m["type"] == "connection_ack" => Ok(client),
            other => Err(ClientError::Protocol(format!("expected connection_ack, got {other:?}"))),
        }
    }

    /// Sends a JSON message.
    pub async fn send(&mut self, message: Value) -> Result<(), ClientError> {
        self.socket.send(Message::Text(message.to_string().into())).await?;
        Ok(())
    }

    /// Starts a subscription.
    pub async fn subscribe(
        &mut self,
        id: &str,
        query: &str,
        variables: Value,
    ) -> Result<(), ClientError> {
        let kind = match self.protocol {
            WsProtocol::TransportWs => "subscribe",
            WsProtocol::LegacyGraphqlWs => "start",
        };
        self.send(json!({ "id": id, "type": kind, "payload": { "query": query, "variables": variables } })).await
    }

    /// The next message or close, within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Result<WsEvent, ClientError> {
        loop {
            let frame = tokio::time::timeout(timeout, self.socket.next())
                .await
                .map_err(|_| ClientError::Timeout("a websocket message"))?;
            match frame {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t)
                        .map_err(|e| ClientError::Protocol(e.to_string()))?;
                    if v["type"] == "ping" {
                        self.send(json!({ "type": "pong" })).await?;
                        continue;
                    }
                    if v["type"] == "ka" {
                        continue;
                    }
                    return Ok(WsEvent::Message(v));
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.to_string())
                    });
                    return Ok(WsEvent::Closed(code, reason));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(WsEvent::Closed(1006, String::new())),
            }
        }
    }

    /// The payload of the next `next`/`data` message for subscription `id`.
    pub async fn next_data(&mut self, id: &str, timeout: Duration) -> Result<Value, ClientError> {
        loop {
            match self.next(timeout).await? {
                WsEvent::Message(m)
                    if m["id"] == id && (m["type"] == "next" || m["type"] == "data") =>
                {
                    return Ok(m["payload"].clone());
                }
                WsEvent::Message(m)
                    if m["id"] == id && (m["type"] == "error" || m["type"] == "complete") =>
                {
                    return Err(ClientError::Protocol(format!("subscription {id} ended: {m}")));
                }
                WsEvent::Message(_) => continue,
                WsEvent::Closed(code, reason) => {
                    return Err(ClientError::Protocol(format!("closed {code} {reason}")));
                }
            }
        }
    }

    /// Closes the connection normally.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.socket
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await?;
        Ok(())
    }
}
