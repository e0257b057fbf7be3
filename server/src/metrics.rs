//! Prometheus metrics: requests, errors and latency per GraphQL operation, open subscriptions,
//! websocket connections, live actors and agenda mailbox depth.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actors::metrics::ActorMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Distinct operation names tracked before the rest are counted as `other`: names come from
/// clients, and an unbounded label set would grow without end.
const MAX_OPERATIONS: usize = 200;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Operation {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationError {
    operation: String,
    code: String,
}

/// The metrics of one server.
pub struct Metrics {
    registry: Registry,
    requests: Family<Operation, Counter>,
    errors: Family<OperationError, Counter>,
    latency: Family<Operation, Histogram>,
    open_subscriptions: Gauge,
    live_actors: Gauge,
    live_sessions: Gauge,
    queued_commands: Gauge,
    /// Open websocket connections (maintained by the websocket handler).
    pub websockets: Arc<AtomicI64>,
    websocket_gauge: Gauge,
    known: Mutex<HashSet<String>>,
    actors: Arc<ActorMetrics>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new(actors: Arc<ActorMetrics>) -> Self {
        let mut registry = Registry::with_prefix("guichet");
        let requests = Family::<Operation, Counter>::default();
        let errors = Family::<OperationError, Counter>::default();
        let latency = Family::<Operation, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
        });
        registry.register("graphql_requests", "GraphQL operations executed", requests.clone());
        registry.register("graphql_errors", "GraphQL errors returned, by code", errors.clone());
        registry.register(
            "graphql_request_duration_seconds",
            "GraphQL operation latency",
            latency.clone(),
        );
        let open_subscriptions = Gauge::default();
        let live_actors = Gauge::default();
        let live_sessions = Gauge::default();
        let queued_commands = Gauge::default();
        let websocket_gauge = Gauge::default();
        registry.register(
            "open_subscriptions",
            "Open GraphQL subscriptions",
            open_subscriptions.clone(),
        );
        registry.register(
            "live_actors",
            "Running actors (agendas and sessions)",
            live_actors.clone(),
        );
        registry.register("live_sessions", "Running session actors", live_sessions.clone());
        registry.register(
            "agenda_mailbox_depth",
            "Agenda commands queued and not yet answered",
            queued_commands.clone(),
        );
        registry.register(
            "websocket_connections",
            "Open websocket connections",
            websocket_gauge.clone(),
        );
        Self {
            registry,
            requests,
            errors,
            latency,
            open_subscriptions,
            live_actors,
            live_sessions,
            queued_commands,
            websockets: Arc::default(),
            websocket_gauge,
            known: Mutex::new(HashSet::new()),
            actors,
        }
    }

    fn label(&self, name: Option<&str>) -> String {
        let valid = |n: &str| {
            !n.is_empty()
                && n.len() <= 64
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        let Some(name) = name.filter(|n| valid(n)) else { return "anonymous".into() };
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.contains(name) || known.len() < MAX_OPERATIONS {
            known.insert(name.to_owned());
            name.to_owned()
        } else {
            "other".into()
        }
    }

    /// Records one executed operation.
    pub fn record(&self, operation: Option<&str>, elapsed: Duration, error_codes: &[String]) {
        let operation = self.label(operation);
        let labels = Operation { operation: operation.clone() };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(elapsed.as_secs_f64());
        for code in error_codes {
            self.errors
                .get_or_create(&OperationError { operation: operation.clone(), code: code.clone() })
                .inc();
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        self.open_subscriptions.set(n(self.actors.open_subscriptions.load(Ordering::Relaxed)));
        self.live_actors.set(n(self.actors.live_actors.load(Ordering::Relaxed)));
        self.live_sessions.set(n(self.actors.live_sessions.load(Ordering::Relaxed)));
        self.queued_commands.set(n(self.actors.queued_commands.load(Ordering::Relaxed)));
        self.websocket_gauge.set(self.websockets.load(Ordering::Relaxed));
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
