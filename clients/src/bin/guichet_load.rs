//! `guichet-load`: measures a Guichet server the way clients use it, over real HTTP and
//! websockets on loopback. By default it starts the `guichet` binary itself on a fresh data
//! folder (so that it can read the server's memory), runs every scenario and prints a Markdown
//! table for BENCHMARKS.md.
//!
//! Scenarios: the rate of a trivial query (the ceiling of this machine), durable bookings per
//! second on one hot event and spread over 100 events, booking latency at half that load,
//! fill-level push latency to 1, 100 and 1,000 subscribers, resident memory idle and per idle
//! subscription, and a meetings agenda (free-slot latency over three months, 200 citizens booking
//! one morning at once).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use clients::{GraphqlClient, WsClient, WsProtocol};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "Load and latency measurements of a Guichet server")]
struct Args {
    /// The guichet binary to start (ignored with --base).
    #[arg(long, default_value = "target/release/guichet")]
    guichet: PathBuf,
    /// Measure an already running server instead (memory figures are then skipped).
    #[arg(long)]
    base: Option<String>,
    /// Administrator of that server.
    #[arg(long, default_value = "admin@guichet.localhost")]
    admin_email: String,
    /// Its password.
    #[arg(long, default_value = "load-admin-password")]
    admin_password: String,
    /// Citizens registered for the booking scenarios.
    #[arg(long, default_value_t = 2000)]
    users: usize,
    /// Concurrent requests in the throughput scenarios.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Rounds of the hot-event scenario (a new event each round).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Largest number of subscribers for the push scenario.
    #[arg(long, default_value_t = 1000)]
    max_subscribers: usize,
    /// Stop after the memory figures (to profile the server's memory alone).
    #[arg(long)]
    memory_only: bool,
    /// Run only the meetings scenarios (with 200 citizens).
    #[arg(long)]
    meetings_only: bool,
    /// Run only the demands scenarios.
    #[arg(long)]
    demands_only: bool,
    /// Submissions in the demands scenario.
    #[arg(long, default_value_t = 5000)]
    submissions: usize,
}

struct Server {
    child: Option<Child>,
    base: String,
    _dir: Option<PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(dir) = &self._dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Server {
    fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
    }
}

async fn start(args: &Args) -> anyhow::Result<Server> {
    if let Some(base) = &args.base {
        return Ok(Server { child: None, base: base.clone(), _dir: None });
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = std::env::temp_dir().join(format!("guichet-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let child = Command::new(&args.guichet)
        .arg("serve")
        .env("GUICHET_LISTEN", format!("127.0.0.1:{port}"))
        .env("GUICHET_DATA_DIR", &dir)
        .env("GUICHET_ADMIN_EMAIL", &args.admin_email)
        .env("GUICHET_ADMIN_PASSWORD", &args.admin_password)
        // Demand actors stop after 15 s idle, so that the demands scenario can see them go.
        .env("GUICHET_DEMAND_IDLE_SECS", "15")
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        // The server's log (set RUST_LOG to see more than warnings) goes to our stderr, away from
        // the results table.
        .stdout(Stdio::from(std::io::stderr()))
        .spawn()
        .with_context(|| format!("starting {}", args.guichet.display()))?;
    let server =
        Server { child: Some(child), base: format!("http://127.0.0.1:{port}"), _dir: Some(dir) };
    let http = reqwest::Client::new();
    for _ in 0..600 {
        if http
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("server did not become healthy")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Runs `total` jobs with `concurrency` workers; returns the elapsed time and each latency.
async fn closed_loop<F, Fut>(
    total: usize,
    concurrency: usize,
    job: F,
) -> anyhow::Result<(Duration, Vec<Duration>)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.min(total.max(1)))
        .map(|_| {
            let next = next.clone();
            let job = job.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<_, anyhow::Error>(latencies);
                    }
                    let t = Instant::now();
                    job(i).await?;
                    latencies.push(t.elapsed());
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    for w in workers {
        all.extend(w.await??);
    }
    let elapsed = started.elapsed();
    all.sort();
    Ok((elapsed, all))
}

async fn create_agenda(admin: &GraphqlClient, slug: &str) -> anyhow::Result<String> {
    let r = admin
        .request(
            "mutation($s: String!) { createAgenda(input: { slug: $s, label: $s, kind: EVENTS }) { id } }",
            json!({ "s": slug }),
        )
        .await?;
    r.data()["createAgenda"]["id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("createAgenda: {}", r.body))
}

async fn create_event(admin: &GraphqlClient, agenda: &str, places: i32) -> anyhow::Result<String> {
    let starts = jiff_free_tomorrow();
    let r = admin
        .request(
            "mutation($a: ID!, $t: DateTime!, $p: Int!) { createEvent(input: { agendaId: $a, label: \"Load\", startsAt: $t, places: $p }) { id } }",
            json!({ "a": agenda, "t": starts, "p": places }),
        )
        .await?;
    r.data()["createEvent"]["id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("createEvent: {}", r.body))
}

/// An RFC 3339 instant about two days from now, without a date library.
fn jiff_free_tomorrow() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        + 2 * 86_400;
    let days = secs / 86_400;
    // Civil-from-days (Howard Hinnant), enough for a timestamp in UTC.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T10:00:00Z")
}

/// Opens `n` websockets, each with one fill-level subscription, past its first message.
async fn open_subscribers(base: &str, event: &str, n: usize) -> anyhow::Result<Vec<WsClient>> {
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let mut ws = WsClient::connect(base, WsProtocol::TransportWs, None).await?;
        ws.subscribe(
            "f",
            "subscription($id: ID!) { eventFillLevel(eventId: $id) { bookedPlaces seq } }",
            json!({ "id": event }),
        )
        .await?;
        ws.next_data("f", Duration::from_secs(30)).await?;
        sockets.push(ws);
    }
    Ok(sockets)
}

const BOOK: &str = "mutation($ids: [ID!]!) { bookEvents(input: { eventIds: $ids }) { id } }";

async fn book(client: &GraphqlClient, event: &str) -> anyhow::Result<()> {
    let r = client.request(BOOK, json!({ "ids": [event] })).await?;
    if !r.is_ok() {
        bail!("booking failed: {}", r.body);
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = start(&args).await?;
    let base = server.base.clone();
    let anon = GraphqlClient::new(&base);
    let admin = anon.login(&args.admin_email, &args.admin_password).await?;
    let mut rows: Vec<(String, String)> = Vec::new();
    let rss_idle = server.rss_kib();

    // Memory first, on a fresh server: idle subscriptions, each on its own websocket.
    if rss_idle.is_some() {
        let agenda = create_agenda(&admin, "load-memory").await?;
        let event = create_event(&admin, &agenda, 10).await?;
        let warm = open_subscribers(&base, &event, 50).await?;
        drop(warm);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = server.rss_kib().unwrap_or_default();
        let idle = open_subscribers(&base, &event, args.max_subscribers).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = server.rss_kib().unwrap_or_default();
        let per_kb = after.saturating_sub(before) as f64 * 1.024 / args.max_subscribers as f64;
        rows.push((
            format!(
                "resident memory per open idle subscription ({} websockets, one subscription each)",
                args.max_subscribers
            ),
            format!("{per_kb:.1} KB"),
        ));
        drop(idle);
    }
    if args.memory_only {
        print_rows(rss_idle, rows);
        return Ok(());
    }

    // Ceiling: a trivial query, same client, same concurrency.
    let c = anon.clone();
    let (elapsed, lat) = closed_loop(20_000, args.concurrency, move |_| {
        let c = c.clone();
        async move {
            let r = c.request("{ __typename }", json!({})).await?;
            if !r.is_ok() {
                bail!("{}", r.body);
            }
            Ok(())
        }
    })
    .await?;
    let ceiling = 20_000.0 / elapsed.as_secs_f64();
    rows.push((
        "trivial query `{ __typename }` (ceiling)".into(),
        format!(
            "{ceiling:.0}/s, p50 {} p99 {}",
            ms(percentile(&lat, 50.0)),
            ms(percentile(&lat, 99.0))
        ),
    ));

    eprintln!("registering {} citizens...", args.users);
    let (_, _) = closed_loop(args.users, 4, {
        let anon = anon.clone();
        move |i| {
            let anon = anon.clone();
            async move {
                anon.register(&format!("load-{i}@citoyens.test"), "load-password", "Load", "Test")
                    .await?;
                Ok(())
            }
        }
    })
    .await?;
    let mut users = Vec::with_capacity(args.users);
    for i in 0..args.users {
        users.push(anon.login(&format!("load-{i}@citoyens.test"), "load-password").await?);
    }
    let users = Arc::new(users);
    if args.demands_only {
        demands_scenario(&server, &admin, &users, args.submissions, args.concurrency, &mut rows)
            .await?;
        print_rows(rss_idle, rows);
        return Ok(());
    }
    if args.meetings_only {
        meetings_scenario(&admin, &users, &mut rows).await?;
        print_rows(rss_idle, rows);
        return Ok(());
    }

    // Hot event: every citizen books the same event, a new event each round.
    let agenda = create_agenda(&admin, "load-hot").await?;
    let mut hot_rates = Vec::new();
    for _ in 0..args.rounds {
        let event = create_event(&admin, &agenda, 1_000_000).await?;
        let u = users.clone();
        let (elapsed, _) = closed_loop(u.len(), args.concurrency, move |i| {
            let u = u.clone();
            let e = event.clone();
            async move { book(&u[i], &e).await }
        })
        .await?;
        hot_rates.push(users.len() as f64 / elapsed.as_secs_f64());
    }
    hot_rates.sort_by(f64::total_cmp);
    let hot = hot_rates[hot_rates.len() / 2];
    rows.push((
        format!(
            "durable bookings, one hot event ({} bookers × {} rounds, median)",
            users.len(),
            args.rounds
        ),
        format!("{hot:.0}/s ({:.2} × ceiling)", hot / ceiling),
    ));

    // Spread: 100 events over 10 agendas; each booking goes to the next event.
    let mut events = Vec::new();
    for a in 0..10 {
        let agenda = create_agenda(&admin, &format!("load-spread-{a}")).await?;
        for _ in 0..10 {
            events.push(create_event(&admin, &agenda, 1_000_000).await?);
        }
    }
    let events = Arc::new(events);
    let total = users.len() * 5;
    let (u, ev) = (users.clone(), events.clone());
    let (elapsed, _) = closed_loop(total, args.concurrency, move |i| {
        let (u, ev) = (u.clone(), ev.clone());
        // Each citizen books five different events.
        async move { book(&u[i % u.len()], &ev[(i / u.len() * 20 + i) % ev.len()]).await }
    })
    .await?;
    let spread = total as f64 / elapsed.as_secs_f64();
    rows.push((
        format!("durable bookings spread over 100 events ({total} bookings)"),
        format!("{spread:.0}/s ({:.2} × ceiling)", spread / ceiling),
    ));

    // Latency at half the hot-event rate, open loop.
    let half = (hot / 2.0).max(1.0);
    let event = create_event(&admin, &agenda, 1_000_000).await?;
    let n = users.len();
    let interval = Duration::from_secs_f64(1.0 / half);
    let mut tasks = Vec::with_capacity(n);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..n {
        tick.tick().await;
        let (u, e) = (users.clone(), event.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            book(&u[i], &e).await.map(|()| t.elapsed())
        }));
    }
    let mut lat = Vec::with_capacity(n);
    for t in tasks {
        lat.push(t.await??);
    }
    lat.sort();
    rows.push((
        format!("booking latency at half load ({half:.0}/s, {n} bookings)"),
        format!("p50 {} p99 {}", ms(percentile(&lat, 50.0)), ms(percentile(&lat, 99.0))),
    ));

    // Fill-level push: request sent → every subscriber received (an upper bound of commit →
    // subscriber, since the commit happens within the request).
    let mut counts: Vec<usize> = [1usize, 100, args.max_subscribers]
        .into_iter()
        .filter(|n| *n <= args.max_subscribers)
        .collect();
    counts.sort_unstable();
    counts.dedup();
    for &subs in &counts {
        let event = create_event(&admin, &agenda, 1_000_000).await?;
        let sockets = open_subscribers(&base, &event, subs).await?;
        let pushes = 50.min(users.len());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, u64, Instant)>();
        let mut readers = Vec::new();
        for (k, mut ws) in sockets.into_iter().enumerate() {
            let tx = tx.clone();
            readers.push(tokio::spawn(async move {
                for _ in 0..pushes {
                    let Ok(p) = ws.next_data("f", Duration::from_secs(30)).await else { break };
                    let booked =
                        p["data"]["eventFillLevel"]["bookedPlaces"].as_u64().unwrap_or_default();
                    let _ = tx.send((k, booked, Instant::now()));
                }
                ws
            }));
        }
        drop(tx);
        let mut sent = Vec::new();
        for user in users.iter().take(pushes) {
            let t = Instant::now();
            book(user, &event).await?;
            sent.push(t);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut lat = Vec::new();
        while let Some((_, booked, at)) = rx.recv().await {
            if let Some(sent_at) = sent.get((booked as usize).saturating_sub(1)) {
                lat.push(at.saturating_duration_since(*sent_at));
            }
        }
        for r in readers {
            let _ = r.await;
        }
        lat.sort();
        rows.push((
            format!("fill-level push to {subs} subscriber(s), {pushes} bookings 20 ms apart"),
            format!("p50 {} p99 {}", ms(percentile(&lat, 50.0)), ms(percentile(&lat, 99.0))),
        ));
    }
    meetings_scenario(&admin, &users, &mut rows).await?;
    demands_scenario(&server, &admin, &users, args.submissions, args.concurrency, &mut rows)
        .await?;
    print_rows(rss_idle, rows);
    Ok(())
}

/// A 30-field form on a 5-status workflow: submissions per second through GraphQL, resident
/// memory per live `DemandActor` and what is left once they stopped, and the rendering of a
/// history of 1,000 entries.
async fn demands_scenario(
    server: &Server,
    admin: &GraphqlClient,
    users: &Arc<Vec<GraphqlClient>>,
    submissions: usize,
    concurrency: usize,
    rows: &mut Vec<(String, String)>,
) -> anyhow::Result<()> {
    let ok = |r: clients::Response, what: &str| -> anyhow::Result<serde_json::Value> {
        if !r.is_ok() {
            bail!("{what}: {}", r.body);
        }
        Ok(r.data().clone())
    };
    let button = |id: &str, target: &str| json!({ "id": id, "type": "BUTTON", "label": id, "by": [{ "function": "receiver" }], "target": target });
    let workflow = json!({
        "slug": "load-demands", "name": "Load", "functions": ["receiver"],
        "statuses": [
            { "id": "received", "name": "Received", "items": [
                { "id": "ack", "type": "NOTIFY", "to": [{ "submitter": true }],
                  "subject": "Received: {{ form_digest }}", "body": "Hello {{ form_user_display_name }}" },
                { "id": "dispatch", "type": "DISPATCH", "function": "receiver", "role": "load-agents" },
                button("take", "in-progress") ] },
            { "id": "in-progress", "name": "In progress", "items": [
                button("ask", "waiting"), button("accept", "accepted"), button("reject", "rejected"),
                { "id": "note", "type": "COMMENT", "label": "Note", "by": [{ "submitter": true }, { "function": "receiver" }] } ] },
            { "id": "waiting", "name": "Waiting for the citizen", "items": [button("answered", "in-progress")] },
            { "id": "accepted", "name": "Accepted" },
            { "id": "rejected", "name": "Rejected" }
        ]
    });
    let r = admin
        .request(
            "mutation($i: WorkflowInput!) { createWorkflow(input: $i) { id } }",
            json!({ "i": workflow }),
        )
        .await?;
    let workflow_id =
        ok(r, "createWorkflow")?["createWorkflow"]["id"].as_str().unwrap_or_default().to_owned();
    let kinds =
        ["STRING", "TEXT", "EMAIL", "NUMBER", "DATE", "BOOL", "ITEM", "ITEMS", "PHONE", "STRING"];
    let mut fields = Vec::new();
    let mut answers = serde_json::Map::new();
    for i in 0..30 {
        let kind = kinds[i % kinds.len()];
        let id = format!("f{i}");
        let mut field = json!({ "id": id, "label": format!("Question {i}"), "type": kind, "required": "REQUIRED" });
        let answer = match kind {
            "STRING" => {
                field["validation"] =
                    json!({ "regex": "[A-Za-z0-9 ]+", "message": "letters and digits" });
                json!(format!("Answer {i}"))
            }
            "TEXT" => json!("A longer answer, on several lines.\nSecond line."),
            "EMAIL" => json!("someone@example.org"),
            "NUMBER" => {
                field["min"] = json!(0);
                field["max"] = json!(1000);
                json!(42)
            }
            "DATE" => json!("2027-01-15"),
            "BOOL" => json!(true),
            "PHONE" => json!("06 12 34 56 78"),
            "ITEM" | "ITEMS" => {
                field["choices"] = json!([{ "id": "a", "text": "A" }, { "id": "b", "text": "B" }, { "id": "c", "text": "C" }]);
                if kind == "ITEM" { json!("b") } else { json!(["a", "c"]) }
            }
            _ => json!(null),
        };
        fields.push(field);
        answers.insert(id, answer);
    }
    let form = json!({ "slug": "load-form", "title": "Load form", "workflowId": workflow_id,
        "functionRoles": [{ "function": "receiver", "role": "load-agents" }],
        "digestTemplate": "{{ form_var_f0 }} / {{ form_var_f6 }}", "fields": fields });
    let r = admin
        .request("mutation($i: FormInput!) { createForm(input: $i) { id } }", json!({ "i": form }))
        .await?;
    ok(r, "createForm")?;
    let r = admin
        .request(
            "mutation { createAccount(input: { email: \"load-agent@mairie.test\", password: \"load-agent-password\", firstName: \"Load\", lastName: \"Agent\", agentRoles: [\"load-agents\"] }) { id } }",
            json!({}),
        )
        .await?;
    ok(r, "createAccount")?;
    let agent = GraphqlClient::new(&server.base)
        .login("load-agent@mairie.test", "load-agent-password")
        .await?;

    // Submissions.
    let before = server.rss_kib();
    let ids = Arc::new(std::sync::Mutex::new(Vec::with_capacity(submissions)));
    let answers = Arc::new(serde_json::Value::Object(answers));
    let (elapsed, lat) = closed_loop(submissions, concurrency.min(64), {
        let users = users.clone();
        let ids = ids.clone();
        move |i| {
            let client = users[i % users.len()].clone();
            let answers = answers.clone();
            let ids = ids.clone();
            async move {
                let r = client
                    .request(
                        "mutation($i: SubmitDemandInput!) { submitDemand(input: $i) { demand { id } } }",
                        json!({ "i": { "form": "load-form", "answers": *answers } }),
                    )
                    .await?;
                if !r.is_ok() {
                    bail!("submitDemand: {}", r.body);
                }
                let id = r.data()["submitDemand"]["demand"]["id"].as_str().unwrap_or_default().to_owned();
                ids.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push(id);
                Ok(())
            }
        }
    })
    .await?;
    rows.push((
        format!(
            "demand submissions, 30-field form, 5-status workflow ({submissions}, {} concurrent)",
            concurrency.min(64)
        ),
        format!(
            "{:.0}/s, p50 {} p99 {}",
            submissions as f64 / elapsed.as_secs_f64(),
            ms(percentile(&lat, 50.0)),
            ms(percentile(&lat, 99.0))
        ),
    ));
    let ids: Vec<String> = ids.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();

    // Memory: wait for the actors to stop, start them all again by reading, let them stop.
    if before.is_some() {
        let settle = Duration::from_secs(25);
        eprintln!("waiting {settle:?} for idle demand actors to stop...");
        tokio::time::sleep(settle).await;
        let stopped = server.rss_kib().unwrap_or_default();
        let n = ids.len();
        closed_loop(n, 32, {
            let agent = agent.clone();
            let ids = Arc::new(ids.clone());
            move |i| {
                let agent = agent.clone();
                let ids = ids.clone();
                async move {
                    let r = agent
                        .request(
                            "query($id: ID!) { demand(id: $id) { id } }",
                            json!({ "id": ids[i] }),
                        )
                        .await?;
                    if !r.is_ok() {
                        bail!("demand: {}", r.body);
                    }
                    Ok(())
                }
            }
        })
        .await?;
        let live = server.rss_kib().unwrap_or_default();
        tokio::time::sleep(settle).await;
        let after = server.rss_kib().unwrap_or_default();
        let kb = |a: u64, b: u64| a.saturating_sub(b) as f64 * 1.024 / n as f64;
        rows.push((
            format!(
                "resident memory per live idle DemandActor ({n} started by reading their demands)"
            ),
            format!("{:.1} KB", kb(live, stopped)),
        ));
        rows.push((
            format!("resident memory left per stopped DemandActor ({n}, after their idle stop)"),
            format!("{:.1} KB", kb(after, stopped)),
        ));
    }

    // A history of 1,000 entries: 999 comments on one demand, then read it whole.
    let demand = ids.first().cloned().unwrap_or_default();
    let r = agent
        .request(
            "mutation($d: ID!) { performAction(demandId: $d, actionId: \"take\") { id } }",
            json!({ "d": demand }),
        )
        .await?;
    ok(r, "take")?;
    let have = 4; // submitted, notified, dispatched, taken
    closed_loop(1000 - have, 1, {
        let agent = agent.clone();
        let demand = demand.clone();
        move |i| {
            let agent = agent.clone();
            let demand = demand.clone();
            async move {
                let r = agent
                    .request(
                        "mutation($d: ID!, $c: String) { performAction(demandId: $d, actionId: \"note\", comment: $c) { id } }",
                        json!({ "d": demand, "c": format!("Comment number {i}") }),
                    )
                    .await?;
                if !r.is_ok() {
                    bail!("comment: {}", r.body);
                }
                Ok(())
            }
        }
    })
    .await?;
    let (_, lat) = closed_loop(200, 1, {
        let agent = agent.clone();
        move |_| {
            let agent = agent.clone();
            let demand = demand.clone();
            async move {
                let r = agent
                    .request(
                        "query($d: ID!) { demand(id: $d) { history(first: 1000) { seq at by status kind text } } }",
                        json!({ "d": demand }),
                    )
                    .await?;
                let n = r.data()["demand"]["history"].as_array().map_or(0, Vec::len);
                if n != 1000 {
                    bail!("history of {n} entries: {}", r.body);
                }
                Ok(())
            }
        }
    })
    .await?;
    rows.push((
        "demand history of 1,000 entries read and rendered over GraphQL (200 reads)".into(),
        format!("p50 {} p99 {}", ms(percentile(&lat, 50.0)), ms(percentile(&lat, 99.0))),
    ));
    Ok(())
}

/// A town hall's meetings agenda with 5 desks open on weekdays 08:30–12:00 and 13:30–17:00 and
/// meeting types of 15 and 30 minutes: the latency of `freeSlots` over three months, then 200
/// citizens booking the same morning at once (the rate, and a check that no desk is shared).
async fn meetings_scenario(
    admin: &GraphqlClient,
    users: &Arc<Vec<GraphqlClient>>,
    rows: &mut Vec<(String, String)>,
) -> anyhow::Result<()> {
    let data = |r: clients::Response, what: &str| -> anyhow::Result<serde_json::Value> {
        if !r.is_ok() {
            bail!("{what}: {}", r.body);
        }
        Ok(r.data().clone())
    };
    let (agenda, half_hour) = town_hall(admin, "load-mairie").await?;
    let days = |from: u64, to: u64| {
        let day = |n: u64| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
                + n * 86_400;
            civil_date(secs)
        };
        (day(from), day(to))
    };
    let (from, to) = days(0, 91);
    let query = "query($a: ID!, $t: ID!, $f: String!, $u: String!) { freeSlots(agendaId: $a, meetingTypeId: $t, from: $f, to: $u) { startsAt freeDesks } }";
    let vars = json!({ "a": agenda, "t": half_hour, "f": from, "u": to });
    let first = data(admin.request(query, vars.clone()).await?, "freeSlots")?;
    let slot_count = first["freeSlots"].as_array().map_or(0, Vec::len);
    let c = admin.clone();
    let (_, lat) = closed_loop(200, 1, move |_| {
        let c = c.clone();
        let vars = vars.clone();
        async move {
            let r = c.request(query, vars).await?;
            if !r.is_ok() {
                bail!("{}", r.body);
            }
            Ok(())
        }
    })
    .await?;
    rows.push((
        format!("freeSlots over 3 months, 1 agenda × 5 desks ({slot_count} slots, 200 queries one at a time)"),
        format!("p50 {} p99 {}", ms(percentile(&lat, 50.0)), ms(percentile(&lat, 99.0))),
    ));

    // The first open morning: every slot starting before noon on the first day listed.
    let all = first["freeSlots"].as_array().context("slots")?;
    let first_day =
        all.first().and_then(|s| s["startsAt"].as_str()).context("no slot")?[..10].to_owned();
    let morning: Vec<String> = all
        .iter()
        .filter_map(|s| s["startsAt"].as_str())
        .filter(|s| s.starts_with(&first_day) && &s[11..13] < "12")
        .map(str::to_owned)
        .collect();
    let bookers = 200.min(users.len());
    let morning = Arc::new(morning);
    let booked = Arc::new(AtomicUsize::new(0));
    let (u, m, b, a, t) =
        (users.clone(), morning.clone(), booked.clone(), agenda.clone(), half_hour.clone());
    let (elapsed, lat) = closed_loop(bookers, bookers, move |i| {
        let (u, m, b, a, t) = (u.clone(), m.clone(), b.clone(), a.clone(), t.clone());
        async move {
            let r = u[i]
                .request(
                    "mutation($a: ID!, $t: ID!, $s: DateTime!) { bookSlot(input: { agendaId: $a, meetingTypeId: $t, startsAt: $s }) { id } }",
                    json!({ "a": a, "t": t, "s": m[i % m.len()] }),
                )
                .await?;
            match r.error_code() {
                None => {
                    b.fetch_add(1, Ordering::Relaxed);
                }
                Some("FULL") => {}
                Some(code) => bail!("bookSlot {code}: {}", r.body),
            }
            Ok(())
        }
    })
    .await?;
    let listing = data(
        admin
            .request(
                "query($a: ID!, $d: String!) { agendaMeetings(agendaId: $a, from: $d, to: $d) { deskId startsAt endsAt } }",
                json!({ "a": agenda, "d": first_day }),
            )
            .await?,
        "agendaMeetings",
    )?;
    let mut per_desk: std::collections::BTreeMap<String, Vec<(String, String)>> =
        Default::default();
    for mt in listing["agendaMeetings"].as_array().context("meetings")? {
        let key = mt["deskId"].as_str().unwrap_or_default().to_owned();
        let span = (
            mt["startsAt"].as_str().unwrap_or_default().to_owned(),
            mt["endsAt"].as_str().unwrap_or_default().to_owned(),
        );
        per_desk.entry(key).or_default().push(span);
    }
    let mut overlaps = 0;
    for spans in per_desk.values_mut() {
        spans.sort();
        overlaps += spans.windows(2).filter(|w| w[1].0 < w[0].1).count();
    }
    rows.push((
        format!(
            "slot bookings, {bookers} citizens at once on one morning ({} slot starts × 5 desks)",
            morning.len()
        ),
        format!(
            "{:.0} requests/s, p50 {} p99 {}; {} booked, {} desk overlaps",
            bookers as f64 / elapsed.as_secs_f64(),
            ms(percentile(&lat, 50.0)),
            ms(percentile(&lat, 99.0)),
            booked.load(Ordering::Relaxed),
            overlaps
        ),
    ));

    // A virtual agenda of three such town halls.
    let virtual_id = data(
        admin
            .request(
                "mutation { createAgenda(input: { slug: \"load-mairies\", label: \"Mairies\", kind: VIRTUAL, meetings: { minimalBookingDelayDays: 1, maximalBookingDelayDays: 120 } }) { id } }",
                json!({}),
            )
            .await?,
        "createAgenda",
    )?["createAgenda"]["id"]
        .as_str()
        .context("virtual id")?
        .to_owned();
    let mut shared_type = None;
    for i in 0..3 {
        let (member, mt) = town_hall(admin, &format!("load-mairie-{i}")).await?;
        shared_type.get_or_insert(mt);
        data(
            admin
                .request(
                    "mutation($a: ID!, $m: ID!) { addVirtualMember(agendaId: $a, memberId: $m) { id } }",
                    json!({ "a": virtual_id, "m": member }),
                )
                .await?,
            "addVirtualMember",
        )?;
    }
    let vars = json!({ "a": virtual_id, "t": shared_type, "f": from, "u": to });
    let first = data(admin.request(query, vars.clone()).await?, "virtual freeSlots")?;
    let slot_count = first["freeSlots"].as_array().map_or(0, Vec::len);
    let c = admin.clone();
    let (_, lat) = closed_loop(200, 1, move |_| {
        let c = c.clone();
        let vars = vars.clone();
        async move {
            let r = c.request(query, vars).await?;
            if !r.is_ok() {
                bail!("{}", r.body);
            }
            Ok(())
        }
    })
    .await?;
    rows.push((
        format!("freeSlots over 3 months, virtual agenda of 3 members × 5 desks ({slot_count} slots, 200 queries one at a time)"),
        format!("p50 {} p99 {}", ms(percentile(&lat, 50.0)), ms(percentile(&lat, 99.0))),
    ));
    Ok(())
}

/// A meetings agenda with 5 desks open on weekdays 08:30–12:00 and 13:30–17:00 and meeting types
/// of 15 and 30 minutes; returns its id and the 30-minute type's id.
async fn town_hall(admin: &GraphqlClient, slug: &str) -> anyhow::Result<(String, String)> {
    let data = |r: clients::Response, what: &str| -> anyhow::Result<serde_json::Value> {
        if !r.is_ok() {
            bail!("{what}: {}", r.body);
        }
        Ok(r.data().clone())
    };
    let agenda = data(
        admin
            .request(
                "mutation($s: String!) { createAgenda(input: { slug: $s, label: $s, kind: MEETINGS, meetings: { minimalBookingDelayDays: 1, maximalBookingDelayDays: 120 } }) { id } }",
                json!({ "s": slug }),
            )
            .await?,
        "createAgenda",
    )?["createAgenda"]["id"]
        .as_str()
        .context("agenda id")?
        .to_owned();
    let mut desks = Vec::new();
    for i in 0..5 {
        let d = data(
            admin
                .request(
                    "mutation($a: ID!, $l: String!) { createDesk(input: { agendaId: $a, label: $l }) { id } }",
                    json!({ "a": agenda, "l": format!("Guichet {i}") }),
                )
                .await?,
            "createDesk",
        )?;
        desks.push(d["createDesk"]["id"].as_str().context("desk id")?.to_owned());
    }
    for day in ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"] {
        for (start, end) in [("08:30", "12:00"), ("13:30", "17:00")] {
            data(
                admin
                    .request(
                        "mutation($a: ID!, $d: [ID!]!, $w: Weekday!, $s: String!, $e: String!) { addOpeningPeriods(input: { agendaId: $a, deskIds: $d, weekday: $w, startTime: $s, endTime: $e }) { id } }",
                        json!({ "a": agenda, "d": desks, "w": day, "s": start, "e": end }),
                    )
                    .await?,
                "addOpeningPeriods",
            )?;
        }
    }
    let mut types = Vec::new();
    for minutes in [15, 30] {
        let t = data(
            admin
                .request(
                    "mutation($a: ID!, $m: Int!, $l: String!) { createMeetingType(input: { agendaId: $a, label: $l, durationMinutes: $m }) { id } }",
                    json!({ "a": agenda, "m": minutes, "l": format!("Rendez-vous {minutes} min") }),
                )
                .await?,
            "createMeetingType",
        )?;
        types.push(t["createMeetingType"]["id"].as_str().context("type id")?.to_owned());
    }
    Ok((agenda, types[1].clone()))
}

/// `YYYY-MM-DD` of a Unix time in UTC (days-from-civil inverse, Howard Hinnant's algorithm).
fn civil_date(secs: u64) -> String {
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Prints the figures as a Markdown table, idle memory first.
fn print_rows(rss_idle: Option<u64>, mut rows: Vec<(String, String)>) {
    if let Some(idle) = rss_idle {
        rows.insert(
            0,
            ("resident memory, idle after start".into(), format!("{:.1} MB", idle as f64 / 1024.0)),
        );
    }
    println!("| measure | result |\n|---|---|");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
}
