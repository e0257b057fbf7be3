//! Persistence: the only module that speaks SurrealDB. Records are plain serde structs kept apart
//! from the domain types; every query is a named function; every write checks the response's
//! errors (a failed statement does not always fail the call).

mod demands;
mod group_commit;
mod jobs;
mod meetings;
mod records;
mod resources;
mod unavailability;

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use surrealdb::Surreal;
use surrealdb::engine::any::{Any, connect};

use crate::access::Roles;
use crate::agenda::model::{
    ActiveBooking, AgendaSettings, BookingStatus, BookingView, Effects, EventState,
};
use crate::agenda::recurrence::Recurrence;
use crate::error::{ErrorCode, HasErrorCode};
use crate::ids::{AccountId, AgendaId, BookingId, EventId, MailId, RecurrenceId};
use crate::mail::{MailStatus, OutboxEntry};
use crate::time::{from_micros, to_micros};

pub use demands::{DefinitionKind, DefinitionWrite, StepWrites, StoredVersion, WebNotification};
use group_commit::{BatchRows, GroupCommit};
pub use meetings::MeetingsConfig;
pub use records::{AccountRecord, SessionRecord};
use records::{AgendaRecord, BookingRecord, EventRecord, OutboxRecord, RecurrenceRecord};

/// Errors of the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A concurrent writer changed what this write was based on; the caller may retry.
    #[error("write conflict: {0}")]
    Conflict(String),
    /// A record with the same key exists.
    #[error("duplicate: {0}")]
    Duplicate(String),
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(String),
    /// A stored record does not decode.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The transaction refused a write that breaks a rule (a resource reserved twice).
    #[error("refused: {0}")]
    Refused(String),
}

impl HasErrorCode for StoreError {
    fn code(&self) -> ErrorCode {
        match self {
            StoreError::Conflict(_) | StoreError::Duplicate(_) | StoreError::Refused(_) => {
                ErrorCode::Conflict
            }
            StoreError::Database(_) => ErrorCode::Unavailable,
            StoreError::Corrupt(_) => ErrorCode::Internal,
        }
    }
}

impl From<surrealdb::Error> for StoreError {
    fn from(e: surrealdb::Error) -> Self {
        classify(&e)
    }
}

fn classify(e: &surrealdb::Error) -> StoreError {
    let message = e.message().to_owned();
    let lower = message.to_lowercase();
    if e.is_thrown() && (lower.contains("resource busy") || lower.contains("unknown resource")) {
        return StoreError::Refused(message);
    }
    if (e.is_thrown() && lower.contains("stale"))
        || lower.contains("conflict")
        || lower.contains("can be retried")
    {
        StoreError::Conflict(message)
    } else if e.is_already_exists() || lower.contains("already exists") {
        StoreError::Duplicate(message)
    } else {
        StoreError::Database(message)
    }
}

/// A handle on the database. Cheap to clone; keep one alive for the life of the process (the
/// on-disk engine closes cleanly only when its last handle drops inside a runtime).
///
/// The SurrealDB handle sits behind an `Arc` because cloning a `Surreal` opens a new database
/// session (about 18 KB of state and a round trip to the engine's session task): cloned per
/// request and per connection, that cost 0.3 to 0.7 MB of memory per open connection and a
/// good share of each request's CPU. All of Guichet shares one session; queries still run
/// concurrently.
#[derive(Clone)]
pub struct Store {
    db: Arc<Surreal<Any>>,
    group_commit: Arc<GroupCommit>,
    /// Signalled after a write that scheduled jobs, so that the scheduler looks again.
    jobs_scheduled: Arc<tokio::sync::Notify>,
    /// Demand steps waiting for the next shared commit.
    demand_commits: tokio::sync::mpsc::UnboundedSender<demands::PendingSteps>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

const NAMESPACE: &str = "guichet";
const DATABASE: &str = "main";

/// The on-disk endpoint for a data folder: SurrealKV with an fsync on every commit, so that an
/// acknowledged write survives a crash.
pub fn embedded_endpoint(data_dir: &std::path::Path) -> String {
    format!("surrealkv://{}?sync=every", data_dir.join("db").display())
}

impl Store {
    /// Opens `endpoint` (`mem://`, `surrealkv://path?sync=every`, `ws://host:port`) and makes sure
    /// the schema exists.
    pub async fn open(endpoint: &str) -> Result<Self, StoreError> {
        Self::open_as(endpoint, None).await
    }

    /// Like [`Store::open`], signing in as a root user first (a SurrealDB server with
    /// authentication).
    pub async fn open_as(
        endpoint: &str,
        root: Option<(String, String)>,
    ) -> Result<Self, StoreError> {
        let db = connect(endpoint).await?;
        if let Some((username, password)) = root {
            db.signin(surrealdb::opt::auth::Root { username, password }).await?;
        }
        db.query(format!(
            "DEFINE NAMESPACE IF NOT EXISTS {NAMESPACE}; USE NS {NAMESPACE}; DEFINE DATABASE IF NOT EXISTS {DATABASE};"
        ))
        .await?
        .check()?;
        db.use_ns(NAMESPACE).use_db(DATABASE).await?;
        let (demand_commits, pending) = tokio::sync::mpsc::unbounded_channel();
        let store = Self {
            db: Arc::new(db),
            group_commit: Arc::default(),
            jobs_scheduled: Arc::default(),
            demand_commits,
        };
        store.write(include_str!("schema.surql"), Vec::new()).await?;
        tokio::spawn(demands::commit_demand_steps(store.clone(), pending));
        Ok(store)
    }

    /// Runs `query` with `vars`, failing on the first statement error.
    async fn write(
        &self,
        query: &str,
        vars: Vec<(&'static str, serde_json::Value)>,
    ) -> Result<surrealdb::IndexedResults, StoreError> {
        let mut q = self.db.query(query);
        for (k, v) in vars {
            q = q.bind((k, v));
        }
        let mut response = q.await?;
        let errors = response.take_errors();
        if errors.is_empty() {
            return Ok(response);
        }
        // In a failed transaction every statement reports "not executed"; the cause is the one
        // error that says something else.
        let mut errors: Vec<_> = errors.into_iter().collect();
        errors.sort_by_key(|(i, _)| *i);
        let cause = errors
            .iter()
            .find(|(_, e)| {
                let m = e.message();
                !m.contains("not executed") && !m.contains("aborted due to a prior error")
            })
            .or_else(|| errors.first())
            .map(|(_, e)| classify(e))
            .unwrap_or_else(|| StoreError::Database("unknown failure".into()));
        Err(cause)
    }

    async fn rows<T: DeserializeOwned>(
        &self,
        query: &str,
        vars: Vec<(&'static str, serde_json::Value)>,
    ) -> Result<Vec<T>, StoreError> {
        let mut response = self.write(query, vars).await?;
        let values: Vec<serde_json::Value> = response.take(0)?;
        values.into_iter().map(decode).collect()
    }

    async fn row<T: DeserializeOwned>(
        &self,
        query: &str,
        vars: Vec<(&'static str, serde_json::Value)>,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.rows(query, vars).await?.into_iter().next())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.write("RETURN 1", vec![]).await.map(drop)
    }

    // ----- accounts -----

    /// Creates an account; `Duplicate` when the email is taken.
    pub async fn create_account(&self, account: &AccountRecord) -> Result<(), StoreError> {
        self.write(
            "BEGIN TRANSACTION;
             CREATE type::record('account_email', $rec.email) SET account = $rec.id;
             CREATE type::record('account', $rec.id) CONTENT $rec;
             COMMIT TRANSACTION;",
            vec![("rec", json(account)?)],
        )
        .await
        .map(drop)
    }

    /// The account with this (normalised) email.
    pub async fn account_by_email(&self, email: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.row(
            "SELECT *, record::id(id) AS id FROM type::record('account', (SELECT VALUE account FROM ONLY type::record('account_email', $email)))",
            vec![("email", email.into())],
        )
        .await
    }

    /// The account with this id.
    pub async fn account(&self, id: AccountId) -> Result<Option<AccountRecord>, StoreError> {
        self.row(
            "SELECT *, record::id(id) AS id FROM type::record('account', $id)",
            vec![("id", id.to_string().into())],
        )
        .await
    }

    /// The addresses of some accounts (those that still exist), in the order given.
    pub async fn account_emails(&self, ids: &[AccountId]) -> Result<Vec<String>, StoreError> {
        self.account_fields(ids, |a| Some(a.email)).await
    }

    /// The phone numbers of some accounts (those that have one).
    pub async fn account_phones(&self, ids: &[AccountId]) -> Result<Vec<String>, StoreError> {
        self.account_fields(ids, |a| a.phone).await
    }

    /// One field of some accounts, in the order given, leaving out missing accounts and fields.
    async fn account_fields(
        &self,
        ids: &[AccountId],
        field: impl Fn(AccountRecord) -> Option<String>,
    ) -> Result<Vec<String>, StoreError> {
        // Point lookups: a message has one recipient account, or the few of a cancelled event.
        let mut values = Vec::with_capacity(ids.len());
        for id in ids {
            values.extend(self.account(*id).await?.and_then(&field));
        }
        Ok(values)
    }

    /// Sets or clears an account's phone number (already normalised).
    pub async fn set_phone(&self, id: AccountId, phone: Option<&str>) -> Result<bool, StoreError> {
        let rows: Vec<serde_json::Value> = self
            .rows(
                "UPDATE type::record('account', $id) SET phone = $phone WHERE id != NONE RETURN id",
                vec![("id", id.to_string().into()), ("phone", json(&phone)?)],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Sets the phone line an agent answers calls on.
    pub async fn set_reception_line(
        &self,
        id: AccountId,
        line: Option<&str>,
    ) -> Result<bool, StoreError> {
        let rows: Vec<serde_json::Value> = self
            .rows(
                "UPDATE type::record('account', $id) SET reception_line = $line WHERE id != NONE RETURN id",
                vec![("id", id.to_string().into()), ("line", json(&line)?)],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// The accounts whose phone number is `phone` (E.164).
    pub async fn accounts_by_phone(&self, phone: &str) -> Result<Vec<AccountId>, StoreError> {
        let ids: Vec<String> = self
            .rows(
                "SELECT VALUE record::id(id) FROM account WHERE phone = $phone",
                vec![("phone", phone.into())],
            )
            .await?;
        ids.iter().map(|s| parse_id(s)).collect()
    }

    /// Gives an account a new calendar feed secret (by hash), dropping the previous one.
    pub async fn set_calendar_feed(&self, id: AccountId, hash: &str) -> Result<bool, StoreError> {
        let Some(account) = self.account(id).await? else { return Ok(false) };
        self.write(
            "BEGIN TRANSACTION;
             IF $old { DELETE type::record('calendar_feed', $old) RETURN NONE; };
             CREATE type::record('calendar_feed', $hash) SET account = $id RETURN NONE;
             UPDATE type::record('account', $id) SET calendar_feed = $hash RETURN NONE;
             COMMIT TRANSACTION;",
            vec![
                ("id", id.to_string().into()),
                ("hash", hash.into()),
                ("old", json(&account.calendar_feed)?),
            ],
        )
        .await?;
        Ok(true)
    }

    /// The account whose calendar feed secret has this hash.
    pub async fn account_by_calendar_feed(
        &self,
        hash: &str,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let account: Option<String> = self
            .row(
                "SELECT VALUE account FROM type::record('calendar_feed', $hash)",
                vec![("hash", hash.into())],
            )
            .await?;
        match account {
            Some(id) => self.account(parse_id(&id)?).await,
            None => Ok(None),
        }
    }

    /// Replaces an account's roles.
    pub async fn set_roles(&self, id: AccountId, roles: &Roles) -> Result<bool, StoreError> {
        let rows: Vec<serde_json::Value> = self
            .rows(
                "UPDATE type::record('account', $id) SET admin = $admin, agent_roles = $agent_roles WHERE id != NONE RETURN id",
                vec![
                    ("id", id.to_string().into()),
                    ("admin", roles.admin.into()),
                    ("agent_roles", json(&roles.agent_roles)?),
                ],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// How many accounts exist (to create the first administrator on an empty database).
    pub async fn count_accounts(&self) -> Result<u64, StoreError> {
        count(self, "SELECT count() AS n FROM account GROUP ALL").await
    }

    // ----- sessions -----

    /// Stores a new session.
    pub async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        self.write(
            "CREATE type::record('session', $rec.id) CONTENT $rec",
            vec![("rec", json(session)?)],
        )
        .await
        .map(drop)
    }

    /// The session stored under this token hash.
    pub async fn session(&self, token_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.row(
            "SELECT *, record::id(id) AS id FROM type::record('session', $id)",
            vec![("id", token_hash.into())],
        )
        .await
    }

    /// Records activity on a session (written lazily by its actor).
    pub async fn touch_session(&self, token_hash: &str, at: Timestamp) -> Result<(), StoreError> {
        self.write(
            "UPDATE type::record('session', $id) SET last_seen_us = math::max([last_seen_us, $at]) WHERE id != NONE",
            vec![("id", token_hash.into()), ("at", to_micros(at).into())],
        )
        .await
        .map(drop)
    }

    /// Revokes a session for good.
    pub async fn revoke_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.write(
            "UPDATE type::record('session', $id) SET revoked = true WHERE id != NONE",
            vec![("id", token_hash.into())],
        )
        .await
        .map(drop)
    }

    // ----- agendas and events -----

    /// Creates an agenda; `Duplicate` when the slug is taken.
    pub async fn create_agenda(
        &self,
        agenda: &AgendaSettings,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let rec = AgendaRecord::from_settings(agenda, now);
        self.write(
            "BEGIN TRANSACTION;
             CREATE type::record('agenda_slug', $rec.slug) SET agenda = $rec.id;
             CREATE type::record('agenda', $rec.id) CONTENT $rec;
             COMMIT TRANSACTION;",
            vec![("rec", json(&rec)?)],
        )
        .await
        .map(drop)
    }

    /// An agenda's settings.
    pub async fn agenda(&self, id: AgendaId) -> Result<Option<AgendaSettings>, StoreError> {
        let rec: Option<AgendaRecord> = self
            .row(
                "SELECT *, record::id(id) AS id FROM type::record('agenda', $id)",
                vec![("id", id.to_string().into())],
            )
            .await?;
        rec.map(AgendaRecord::into_settings).transpose()
    }

    /// The agenda with this slug.
    pub async fn agenda_id_by_slug(&self, slug: &str) -> Result<Option<AgendaId>, StoreError> {
        let id: Option<String> = self
            .row(
                "SELECT VALUE agenda FROM type::record('agenda_slug', $slug)",
                vec![("slug", slug.into())],
            )
            .await?;
        id.map(|s| parse_id(&s)).transpose()
    }

    /// Every agenda, by label.
    pub async fn agendas(&self) -> Result<Vec<AgendaSettings>, StoreError> {
        let recs: Vec<AgendaRecord> =
            self.rows("SELECT *, record::id(id) AS id FROM agenda ORDER BY label", vec![]).await?;
        recs.into_iter().map(AgendaRecord::into_settings).collect()
    }

    /// Stores a recurrence rule and its occurrences in one transaction.
    pub async fn create_recurrence(
        &self,
        rule: &Recurrence,
        states: &[EventState],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let rec = RecurrenceRecord::from_rule(rule, now);
        let events: Vec<serde_json::Value> = states
            .iter()
            .map(|e| json(&EventRecord::from_state(e, now)))
            .collect::<Result<_, _>>()?;
        let reserve: Vec<serde_json::Value> = states.iter().filter_map(reservation).collect();
        self.write(
            &format!(
                "BEGIN TRANSACTION;
                 CREATE type::record('recurrence', $rec.id) CONTENT $rec;
                 INSERT INTO event $events RETURN NONE;
                 {}
                 COMMIT TRANSACTION;",
                resources::RESERVE
            ),
            vec![
                ("rec", json(&rec)?),
                ("events", serde_json::Value::Array(events)),
                ("reserve", serde_json::Value::Array(reserve)),
            ],
        )
        .await
        .map(drop)
    }

    /// The recurrence rules of an agenda.
    pub async fn recurrences(&self, agenda: AgendaId) -> Result<Vec<Recurrence>, StoreError> {
        let recs: Vec<RecurrenceRecord> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM recurrence WHERE agenda = $a ORDER BY first_day",
                vec![("a", agenda.to_string().into())],
            )
            .await?;
        recs.into_iter().map(RecurrenceRecord::into_rule).collect()
    }

    /// One recurrence rule.
    pub async fn recurrence(&self, id: RecurrenceId) -> Result<Option<Recurrence>, StoreError> {
        let rec: Option<RecurrenceRecord> = self
            .row(
                "SELECT *, record::id(id) AS id FROM type::record('recurrence', $id)",
                vec![("id", id.to_string().into())],
            )
            .await?;
        rec.map(RecurrenceRecord::into_rule).transpose()
    }

    /// Stores a new event.
    pub async fn create_event(&self, event: &EventState, now: Timestamp) -> Result<(), StoreError> {
        let rec = EventRecord::from_state(event, now);
        let reserve: Vec<serde_json::Value> = reservation(event).into_iter().collect();
        self.write(
            &format!(
                "BEGIN TRANSACTION; CREATE type::record('event', $rec.id) CONTENT $rec; {} COMMIT TRANSACTION;",
                resources::RESERVE
            ),
            vec![("rec", json(&rec)?), ("reserve", serde_json::Value::Array(reserve))],
        )
        .await
        .map(drop)
    }

    /// The agenda an event belongs to.
    pub async fn event_agenda(&self, id: EventId) -> Result<Option<AgendaId>, StoreError> {
        let agenda: Option<String> = self
            .row(
                "SELECT VALUE agenda FROM type::record('event', $id)",
                vec![("id", id.to_string().into())],
            )
            .await?;
        agenda.map(|s| parse_id(&s)).transpose()
    }

    /// Every event of an agenda with its active bookings.
    pub async fn agenda_events(&self, agenda: AgendaId) -> Result<Vec<EventState>, StoreError> {
        let a = agenda.to_string();
        let events: Vec<EventRecord> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM event WHERE agenda = $a",
                vec![("a", a.clone().into())],
            )
            .await?;
        let bookings: Vec<BookingRecord> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM booking WHERE agenda = $a AND status IN ['confirmed', 'waiting'] ORDER BY created_us",
                vec![("a", a.into())],
            )
            .await?;
        assemble(events, bookings)
    }

    /// Some events, wherever they belong, with their active bookings.
    pub async fn events(&self, ids: &[EventId]) -> Result<Vec<EventState>, StoreError> {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let events: Vec<EventRecord> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM event WHERE record::id(id) IN $ids",
                vec![("ids", json(&ids)?)],
            )
            .await?;
        // Bookings are indexed by agenda, not by event: reach them through the events' agendas.
        let agendas: std::collections::BTreeSet<&str> =
            events.iter().map(EventRecord::agenda).collect();
        let bookings: Vec<BookingRecord> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM booking WHERE agenda IN $agendas AND status IN ['confirmed', 'waiting'] AND event IN $ids ORDER BY created_us",
                vec![("agendas", json(&agendas)?), ("ids", json(&ids)?)],
            )
            .await?;
        assemble(events, bookings)
    }

    /// Where a booking belongs, and its current state.
    pub async fn booking(&self, id: BookingId) -> Result<Option<BookingView>, StoreError> {
        let rec: Option<BookingRecord> = self
            .row(
                "SELECT *, record::id(id) AS id FROM type::record('booking', $id)",
                vec![("id", id.to_string().into())],
            )
            .await?;
        rec.map(BookingRecord::into_view).transpose()
    }

    /// The bookings of an account, newest first (at most `limit`).
    pub async fn account_bookings(
        &self,
        account: AccountId,
        include_cancelled: bool,
        limit: u32,
    ) -> Result<Vec<BookingView>, StoreError> {
        let recs: Vec<BookingRecord> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM booking WHERE account = $a AND ($all OR status != 'cancelled')
                 ORDER BY created_us DESC LIMIT $limit",
                vec![
                    ("a", account.to_string().into()),
                    ("all", include_cancelled.into()),
                    ("limit", limit.into()),
                ],
            )
            .await?;
        recs.into_iter().map(BookingRecord::into_view).collect()
    }

    /// Writes a batch of agenda changes as one transaction (possibly shared with other agendas'
    /// batches, see [`group_commit`]). Each touched event is written only if its stored version is
    /// still the one the batch was based on and its counters stay within its places, so the
    /// database refuses overbooking even with several writers.
    pub async fn commit_agenda_batch(
        &self,
        events: &[EventState],
        effects: &Effects,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if effects.is_empty() {
            return Ok(());
        }
        let updates = events
            .iter()
            .filter_map(|e| {
                let expected = effects.touched.get(&e.id)?;
                Some(serde_json::json!({
                    "id": e.id.to_string(),
                    "expected": expected,
                    "version": e.version,
                    "confirmed": e.confirmed,
                    "waiting": e.waiting,
                    "notified": e.notified.iter().collect::<Vec<_>>(),
                }))
            })
            .collect();
        let edits = events
            .iter()
            .filter(|e| effects.edited.contains(&e.id))
            .filter_map(|e| Some(EventRecord::edit(e, *effects.touched.get(&e.id)?)))
            .collect();
        let created = effects
            .created
            .iter()
            .map(|c| json(&BookingRecord::created(&c.view, c.booked_by)))
            .collect::<Result<_, _>>()?;
        let changed = effects
            .changed
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.view.id.to_string(),
                    "status": c.view.status.as_str(),
                    "at": to_micros(c.at),
                    "present": c.view.presence.as_ref().map(|p| p.present),
                    "absence_reason": c.view.presence.as_ref().and_then(|p| p.absence_reason.clone()),
                })
            })
            .collect();
        let mails = effects
            .mails
            .iter()
            .map(|m| json(&OutboxRecord::queued(m, now)))
            .collect::<Result<_, _>>()?;
        let jobs = effects.jobs.iter().map(|j| jobs::job_row(j, now)).collect();
        // An edited event holds its resources over its (possibly new) span, or none once
        // cancelled.
        let reserve = events
            .iter()
            .filter(|e| effects.edited.contains(&e.id))
            .filter_map(|e| {
                reservation(e).or_else(|| {
                    Some(resources::reserve_row(
                        &event_owner(e.id),
                        &[],
                        e.starts_at,
                        e.starts_at,
                        None,
                    ))
                })
            })
            .collect();
        let rows = BatchRows { edits, updates, created, changed, mails, jobs, reserve };
        self.group_commit
            .commit(rows, |rows| async move {
                let (query, vars) = rows.into_query();
                self.write(&query, vars).await.map(drop)
            })
            .await?;
        if !effects.jobs.is_empty() {
            self.jobs_scheduled.notify_one();
        }
        Ok(())
    }

    // ----- outbox -----

    /// Claims up to `limit` mails due now, leasing them for a minute so that another process does
    /// not send them at the same time (a crash mid-send means the mail is sent again later).
    pub async fn due_mails(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let ids: Vec<String> = self
            .rows(
                "SELECT VALUE record::id(id) FROM outbox WHERE status = 'queued' AND next_attempt_us <= $now ORDER BY next_attempt_us LIMIT $limit",
                vec![("now", to_micros(now).into()), ("limit", limit.into())],
            )
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let lease = to_micros(now) + 60_000_000;
        let claimed = self
            .write(
                "BEGIN TRANSACTION;
                 FOR $i IN $ids {
                    UPDATE type::record('outbox', $i) SET next_attempt_us = $lease
                        WHERE status = 'queued' AND next_attempt_us <= $now;
                 };
                 COMMIT TRANSACTION;",
                vec![("ids", json(&ids)?), ("now", to_micros(now).into()), ("lease", lease.into())],
            )
            .await;
        match claimed {
            Ok(_) => {}
            // Another process claimed some of them first: leave these to it.
            Err(StoreError::Conflict(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
        let recs: Vec<OutboxRecord> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM outbox WHERE status = 'queued' AND next_attempt_us = $lease AND record::id(id) IN $ids",
                vec![("lease", lease.into()), ("ids", json(&ids)?)],
            )
            .await?;
        recs.into_iter().map(OutboxRecord::into_entry).collect()
    }

    /// When the next queued mail is due.
    pub async fn next_mail_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let next: Option<i64> = self
            .row(
                "SELECT VALUE next_attempt_us FROM outbox WHERE status = 'queued' ORDER BY next_attempt_us LIMIT 1",
                vec![],
            )
            .await?;
        Ok(next.map(from_micros))
    }

    /// Records the outcome of a delivery attempt.
    pub async fn mark_mail(
        &self,
        id: MailId,
        status: MailStatus,
        attempts: u32,
        last_error: Option<String>,
        next_attempt: Timestamp,
        sent_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        self.write(
            "UPDATE type::record('outbox', $id) SET status = $status, attempts = $attempts, last_error = $error,
                next_attempt_us = $next, sent_us = $sent WHERE id != NONE",
            vec![
                ("id", id.to_string().into()),
                ("status", status.as_str().into()),
                ("attempts", attempts.into()),
                ("error", json(&last_error)?),
                ("next", to_micros(next_attempt).into()),
                ("sent", json(&sent_at.map(to_micros))?),
            ],
        )
        .await
        .map(drop)
    }

    /// The most recent mails of the outbox, newest first.
    pub async fn outbox(&self, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        let recs: Vec<OutboxRecord> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM outbox ORDER BY created_us DESC LIMIT $limit",
                vec![("limit", limit.into())],
            )
            .await?;
        recs.into_iter().map(OutboxRecord::into_entry).collect()
    }
}

async fn count(store: &Store, query: &str) -> Result<u64, StoreError> {
    #[derive(serde::Deserialize)]
    struct Count {
        n: u64,
    }
    Ok(store.row::<Count>(query, vec![]).await?.map_or(0, |c| c.n))
}

fn json<T: Serialize>(value: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, StoreError> {
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse_id<T: std::str::FromStr>(s: &str) -> Result<T, StoreError> {
    s.parse().map_err(|_| StoreError::Corrupt(format!("bad id {s:?}")))
}

/// How reservations name an event.
pub fn event_owner(id: EventId) -> String {
    format!("event-{id}")
}

/// How reservations name a meeting.
pub fn meeting_owner(id: crate::ids::MeetingId) -> String {
    format!("meeting-{id}")
}

/// The reservation row of an event that holds resources (and is not cancelled).
fn reservation(e: &EventState) -> Option<serde_json::Value> {
    let ends_at = e.ends_at?;
    (!e.resources.is_empty() && e.cancelled_at.is_none()).then(|| {
        resources::reserve_row(&event_owner(e.id), &e.resources, e.starts_at, ends_at, None)
    })
}

fn assemble(
    events: Vec<EventRecord>,
    bookings: Vec<BookingRecord>,
) -> Result<Vec<EventState>, StoreError> {
    let mut states: HashMap<EventId, EventState> = HashMap::new();
    for rec in events {
        let state = rec.into_state()?;
        states.insert(state.id, state);
    }
    for rec in bookings {
        let view = rec.into_view()?;
        let Some(event) = states.get_mut(&view.event_id) else { continue };
        if view.status == BookingStatus::WaitingList {
            event.waiting_queue.push_back(view.id);
        }
        event.bookings.insert(
            view.id,
            ActiveBooking {
                id: view.id,
                account_id: view.account_id,
                status: view.status,
                created_at: view.created_at,
                presence: view.presence,
            },
        );
    }
    Ok(states.into_values().collect())
}
