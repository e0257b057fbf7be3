//! The `guichet` server: configuration, start-up, HTTP and websocket transport, shutdown.
//!
//! - `config`: flags and environment, read once.
//! - `routes`: `POST/GET /graphql`, `/healthz`, `/metrics`.
//! - `ws`: the GraphQL websocket.
//! - `guard`: limits checked before parsing.
//! - `metrics`: Prometheus metrics.
//! - `demo`: the demo town.
//!
//! Invariant: the server holds no domain state of its own; it translates HTTP and websockets
//! into GraphQL requests over `actors::Services`.

pub mod config;
pub mod demo;
mod feeds;
mod files;
pub mod guard;
mod hooks;
pub mod metrics;
mod reception;
pub mod routes;
mod ws;

use std::future::Future;
use std::sync::Arc;

use actors::Services;
use actors::access::Roles;
use actors::account::NewAccount;
use actors::mail::{HttpSmsGateway, MailConfig, Mailer};
use actors::scheduler::Scheduler;
use actors::session::SessionPolicy;
use actors::store::Store;
use anyhow::Context as _;
use graphql_schema::AppSchema;
use jiff::SignedDuration;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Config;

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Domain services.
    pub services: Services,
    /// The GraphQL schema.
    pub schema: AppSchema,
    /// Metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Turns true when the server starts shutting down.
    pub shutdown: watch::Receiver<bool>,
    ws_init_timeout_secs: u32,
    reception_token: Option<String>,
}

impl AppState {
    /// True once shutdown started.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// A started application: services, mailer, schema; not yet listening.
pub struct App {
    state: AppState,
    shutdown_tx: watch::Sender<bool>,
    mailer: tokio::task::JoinHandle<()>,
    scheduler: tokio::task::JoinHandle<()>,
    cors_origins: Vec<String>,
}

impl App {
    /// Opens the database, starts the actors and the mailer, creates the first administrator on
    /// an empty database, and loads the demo town when asked.
    pub async fn start(config: &Config) -> anyhow::Result<Self> {
        if config.db.is_none() {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("creating data folder {}", config.data_dir.display()))?;
        }
        let endpoint = config.db_endpoint();
        let store = Store::open(&endpoint)
            .await
            .with_context(|| format!("opening database {}", redact(&endpoint)))?;
        let policy = SessionPolicy {
            idle: SignedDuration::from_secs(i64::from(config.session_idle_secs.max(1))),
            absolute: SignedDuration::from_secs(i64::from(config.session_max_secs.max(1))),
        };
        let files = actors::demands::attachments::Files::new(config.data_dir.join("files"))
            .context("creating the files folder")?;
        let settings = actors::demands::DemandsSettings {
            files: Some(files),
            idle_after: std::time::Duration::from_secs(u64::from(config.demand_idle_secs.max(1))),
        };
        let services =
            Services::start_with(store.clone(), policy, settings).context("starting actors")?;
        let (shutdown_tx, shutdown) = watch::channel(false);
        let mut mailer = Mailer::new(
            store.clone(),
            &MailConfig { smtp_url: config.smtp_url.clone(), from: config.mail_from.clone() },
            services.mail.clone(),
        )
        .context("mail configuration")?;
        if let Some(url) = &config.sms_url {
            let gateway =
                HttpSmsGateway::new(url, config.sms_token.clone(), config.sms_from.clone())
                    .map_err(anyhow::Error::msg)
                    .context("SMS configuration")?;
            mailer = mailer.with_sms(Arc::new(gateway));
        }
        let mailer = tokio::spawn(mailer.run(shutdown.clone()));
        let scheduler = Scheduler::new(
            store,
            services.agendas.clone(),
            services.meetings.clone(),
            services.demands.clone(),
            services.mail.clone(),
        );
        let scheduler = tokio::spawn(scheduler.run(shutdown.clone()));
        ensure_admin(&services, config).await?;
        if config.demo {
            demo::load(&services).await.context("loading the demo town")?;
        }
        let schema = graphql_schema::build_schema(services.clone());
        let metrics = Arc::new(metrics::Metrics::new(services.metrics.clone()));
        let state = AppState {
            services,
            schema,
            metrics,
            shutdown,
            ws_init_timeout_secs: config.ws_init_timeout_secs,
            reception_token: config.reception_token.clone(),
        };
        Ok(Self {
            state,
            shutdown_tx,
            mailer,
            scheduler,
            cors_origins: config.cors_origins.clone(),
        })
    }

    /// The shared state (for tests and tools).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves on `listener` until `shutdown` resolves, then stops accepting, lets in-flight
    /// requests finish, closes websockets with 1001, stops the mailer and the actors.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = routes::router(self.state.clone(), &self.cors_origins);
        let shutdown_tx = self.shutdown_tx.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, finishing requests");
            let _ = shutdown_tx.send(true);
        };
        axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(signal)
            .await
            .context("serving HTTP")?;
        let _ = self.shutdown_tx.send(true);
        if tokio::time::timeout(std::time::Duration::from_secs(10), self.mailer).await.is_err() {
            tracing::warn!("mailer did not stop in time");
        }
        if tokio::time::timeout(std::time::Duration::from_secs(10), self.scheduler).await.is_err() {
            tracing::warn!("scheduler did not stop in time");
        }
        self.state.services.runtime.shutdown();
        tracing::info!("stopped");
        Ok(())
    }
}

fn redact(endpoint: &str) -> String {
    match endpoint.split_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => endpoint.to_owned(),
    }
}

/// Creates the first administrator on an empty database. Without a configured password, one is
/// generated and printed once on standard error (never logged).
async fn ensure_admin(services: &Services, config: &Config) -> anyhow::Result<()> {
    if !services.accounts.is_empty().await.context("counting accounts")? {
        return Ok(());
    }
    let (password, generated) = match &config.admin_password {
        Some(p) => (p.clone(), false),
        None => (actors::session::random_token().context("random generator")?, true),
    };
    services
        .accounts
        .register(
            NewAccount {
                email: config.admin_email.clone(),
                password: password.clone(),
                first_name: "Admin".into(),
                last_name: "Guichet".into(),
            },
            Roles { admin: true, agent_roles: vec![] },
        )
        .await
        .context("creating the first administrator")?;
    tracing::info!(email = %config.admin_email, "first administrator created");
    if generated {
        eprintln!(
            "\n  First administrator: {}\n  Password (shown once): {password}\n",
            config.admin_email
        );
    }
    Ok(())
}

/// Runs the server with `config` until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let app = App::start(&config).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(address = %listener.local_addr()?, "listening; GraphiQL at /graphql");
    app.serve(listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
