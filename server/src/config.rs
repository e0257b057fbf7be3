//! Configuration: flags or environment, read once at start and passed down. Nothing else reads
//! the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Guichet: a real-time back office for local public services.
#[derive(Debug, Parser)]
#[command(name = "guichet", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<Config>),
    /// Print the GraphQL schema (SDL).
    Schema,
}

/// Server settings.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "GUICHET_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Folder of the embedded database (and later the search index).
    #[arg(long, env = "GUICHET_DATA_DIR", default_value = "./guichet-data")]
    pub data_dir: PathBuf,
    /// SurrealDB endpoint overriding the embedded one: `mem://`, `ws://host:port`.
    #[arg(long, env = "GUICHET_DB")]
    pub db: Option<String>,
    /// Root user of that SurrealDB server, if it requires authentication.
    #[arg(long, env = "GUICHET_DB_USER")]
    pub db_user: Option<String>,
    /// Its password.
    #[arg(long, env = "GUICHET_DB_PASSWORD", hide_env_values = true)]
    pub db_password: Option<String>,
    /// SMTP server, `smtp://[user:pass@]host:port[?tls=required]` or `smtps://...`; without it,
    /// mail stays in the outbox and is logged.
    #[arg(long, env = "GUICHET_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// HTTP(S) gateway for text messages (POST of `{"message","from","to":[...]}`); when unset,
    /// text messages stay in the outbox.
    #[arg(long, env = "GUICHET_SMS_URL")]
    pub sms_url: Option<String>,
    /// Bearer token of the SMS gateway.
    #[arg(long, env = "GUICHET_SMS_TOKEN", hide_env_values = true)]
    pub sms_token: Option<String>,
    /// Sender name of text messages.
    #[arg(long, env = "GUICHET_SMS_FROM", default_value = "Guichet")]
    pub sms_from: String,
    /// Sender of outgoing mail.
    #[arg(long, env = "GUICHET_MAIL_FROM", default_value = "Guichet <noreply@guichet.localhost>")]
    pub mail_from: String,
    /// First administrator's email, created on an empty database.
    #[arg(long, env = "GUICHET_ADMIN_EMAIL", default_value = "admin@guichet.localhost")]
    pub admin_email: String,
    /// First administrator's password; generated and printed once when absent.
    #[arg(long, env = "GUICHET_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Load a small demo town (agendas, events, bookings, accounts).
    #[arg(long, env = "GUICHET_DEMO")]
    pub demo: bool,
    /// Seconds of inactivity after which a session ends.
    #[arg(long, env = "GUICHET_SESSION_IDLE_SECS", default_value_t = 7200)]
    pub session_idle_secs: u32,
    /// Seconds after sign-in after which a session ends.
    #[arg(long, env = "GUICHET_SESSION_MAX_SECS", default_value_t = 43200)]
    pub session_max_secs: u32,
    /// Secret the telephony system sends (`Authorization: Bearer …`) to
    /// `POST /api/reception/calls`; the endpoint is off without it.
    #[arg(long, env = "GUICHET_RECEPTION_TOKEN", hide_env_values = true)]
    pub reception_token: Option<String>,
    /// Seconds a demand's actor stays in memory without messages.
    #[arg(long, env = "GUICHET_DEMAND_IDLE_SECS", default_value_t = 300)]
    pub demand_idle_secs: u32,
    /// Seconds a websocket may wait before `connection_init`.
    #[arg(long, env = "GUICHET_WS_INIT_TIMEOUT_SECS", default_value_t = 10)]
    pub ws_init_timeout_secs: u32,
    /// Origins of browser front ends allowed to call the API (comma-separated; `*` for any).
    /// Tokens travel in headers, never cookies, so allowing an origin lends it no ambient rights.
    #[arg(long, env = "GUICHET_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "GUICHET_LOG_JSON")]
    pub log_json: bool,
}

impl Config {
    /// The database endpoint: the override, or SurrealKV in the data folder with a sync on
    /// every commit.
    pub fn db_endpoint(&self) -> String {
        self.db.clone().unwrap_or_else(|| actors::store::embedded_endpoint(&self.data_dir))
    }

    /// Settings for tests: an in-memory database, no mail server, short timeouts.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            db: None,
            db_user: None,
            db_password: None,
            smtp_url: None,
            sms_url: None,
            sms_token: None,
            sms_from: "Guichet".into(),
            mail_from: "Guichet <noreply@guichet.localhost>".into(),
            admin_email: "admin@guichet.localhost".into(),
            admin_password: Some("admin-password".into()),
            demo: false,
            session_idle_secs: 7200,
            session_max_secs: 43200,
            demand_idle_secs: 300,
            reception_token: Some("reception-test-token".into()),
            ws_init_timeout_secs: 3,
            cors_origins: Vec::new(),
            log_json: false,
        }
    }
}
