//! The test harness: runtime, servers, accounts, an SMTP sink.

use std::future::Future;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clients::GraphqlClient;
use serde_json::{Value, json};
use server::{App, Config};
use tokio::sync::oneshot;

pub const ADMIN_EMAIL: &str = "admin@guichet.localhost";
pub const ADMIN_PASSWORD: &str = "admin-password";
pub const PASSWORD: &str = "citizen-password";

/// Runs a test body on a multi-thread runtime with the stack SurrealDB needs.
pub fn run<F: Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(10 << 20)
        .enable_all()
        .build()
        .expect("test runtime")
        .block_on(f);
}

/// A fresh folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "guichet-{name}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The real server, in this process, on an ephemeral port, over a fresh embedded database.
pub struct TestServer {
    pub base: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = TempDir::new("server");
        let mut config = Config::for_tests(dir.0.clone());
        adjust(&mut config);
        let app = App::start(&config).await.expect("server starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(listener, async move {
            let _ = rx.await;
        }));
        Self { base, shutdown: Some(tx), task: Some(task), _dir: dir }
    }

    pub fn client(&self) -> GraphqlClient {
        GraphqlClient::new(&self.base)
    }

    pub async fn admin(&self) -> GraphqlClient {
        self.client().login(ADMIN_EMAIL, ADMIN_PASSWORD).await.expect("admin logs in")
    }

    /// Shuts down as on SIGTERM and waits for the end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// Registers `n` citizens, a few at a time (password hashing is deliberately slow).
pub async fn citizens(client: &GraphqlClient, n: usize, tag: &str) -> Vec<(GraphqlClient, String)> {
    let mut out = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|i| {
                let c = client.clone();
                let email = format!("{tag}-{i}@citoyens.test");
                tokio::spawn(async move {
                    c.register(&email, PASSWORD, "Jeanne", "Citoyenne").await.unwrap()
                })
            })
            .collect();
        for t in tasks {
            out.push(t.await.unwrap());
        }
    }
    out
}

pub async fn create_agenda(
    admin: &GraphqlClient,
    slug: &str,
    thresholds: &[i32],
    emails: &[&str],
) -> String {
    let r = admin
        .request(
            "mutation($input: CreateAgendaInput!) { createAgenda(input: $input) { id } }",
            json!({ "input": { "slug": slug, "label": slug, "kind": "EVENTS",
                    "fillNotifications": { "thresholds": thresholds, "emails": emails } } }),
        )
        .await
        .unwrap();
    assert!(r.is_ok(), "createAgenda: {}", r.body);
    r.data()["createAgenda"]["id"].as_str().unwrap().to_owned()
}

/// An event tomorrow.
pub async fn create_event(
    admin: &GraphqlClient,
    agenda: &str,
    places: i32,
    waiting: i32,
) -> String {
    let starts = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(26);
    let r = admin
        .request(
            "mutation($input: CreateEventInput!) { createEvent(input: $input) { id } }",
            json!({ "input": { "agendaId": agenda, "label": "Concert", "startsAt": starts.to_string(),
                    "places": places, "waitingListPlaces": waiting } }),
        )
        .await
        .unwrap();
    assert!(r.is_ok(), "createEvent: {}", r.body);
    r.data()["createEvent"]["id"].as_str().unwrap().to_owned()
}

pub const BOOK: &str =
    "mutation($ids: [ID!]!) { bookEvents(input: { eventIds: $ids }) { id status eventId } }";

/// Every client books `event` at once; the responses in client order.
pub async fn book_all(people: Vec<GraphqlClient>, event: &str) -> Vec<clients::Response> {
    let tasks: Vec<_> = people
        .into_iter()
        .map(|client| {
            let id = event.to_owned();
            tokio::spawn(async move { client.request(BOOK, json!({ "ids": [id] })).await.unwrap() })
        })
        .collect();
    let mut responses = Vec::with_capacity(tasks.len());
    for t in tasks {
        responses.push(t.await.unwrap());
    }
    responses
}

pub async fn event(client: &GraphqlClient, id: &str) -> Value {
    let r = client
        .request(
            "query($id: ID!) { event(id: $id) { id places bookedPlaces waitingListPlaces waitingListBooked full bookings { id status } } }",
            json!({ "id": id }),
        )
        .await
        .unwrap();
    assert!(r.is_ok(), "event: {}", r.body);
    r.data()["event"].clone()
}

/// Polls `check` until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check().await
}

/// A free loopback port (bound then released; the caller binds it at once).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real SMTP server on loopback (aiosmtpd) writing each message into a Maildir.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    dir: TempDir,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let dir = TempDir::new("maildir");
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(dir.0.join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd is needed (pip install aiosmtpd); .ci/run installs it");
        let mut sink = Self { child, port, dir };
        let up = eventually(Duration::from_secs(15), async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
        if !up {
            let _ = sink.child.kill();
            panic!("aiosmtpd did not start on port {port} (pip install aiosmtpd)");
        }
        sink
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages received so far.
    pub fn messages(&self) -> Vec<String> {
        let new = self.dir.0.join("mail").join("new");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&new)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        paths.sort();
        paths.iter().filter_map(|p| std::fs::read_to_string(p).ok()).collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `guichet` binary built next to this test binary.
pub fn guichet_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir: &Path = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("guichet");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p server --bin guichet` first (the README's test command does)",
        bin.display()
    );
    bin
}

/// An SMS gateway on loopback that records what it is asked to send, and refuses requests
/// without its bearer token.
pub struct SmsGateway {
    pub url: String,
    pub token: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl SmsGateway {
    pub async fn start() -> Self {
        use axum::http::{HeaderMap, StatusCode};
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let token = "gateway-secret".to_owned();
        let (store, expected) = (received.clone(), format!("Bearer {token}"));
        let app = axum::Router::new().route(
            "/sms",
            axum::routing::post(move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
                let store = store.clone();
                let expected = expected.clone();
                async move {
                    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
                    if auth != Some(expected.as_str()) {
                        return StatusCode::UNAUTHORIZED;
                    }
                    store.lock().unwrap().push(body);
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/sms", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, token, received }
    }

    pub fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }
}
