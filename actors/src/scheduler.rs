//! The one scheduler of timed actions. A job is a record of the store (`job`), written in the
//! same transaction as the change that calls for it (a booking schedules its reminder, a hold its
//! expiry), so nothing scheduled is lost by a crash. One task per process claims due jobs with a
//! lease (so two processes never run one at once, and a crash mid-job lets it run again after the
//! lease), runs them, and records the outcome; a job whose outcome is a message completes in the
//! same transaction that queues the message, so a reminder is queued exactly once.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

use crate::agenda::AgendaRegistry;
use crate::agenda::model::{AgendaError, BookingStatus};
use crate::demands::Demands;
use crate::ids::{AccountId, AgendaId, BookingId, DemandId, MailId, MeetingId};
use crate::mail::{Channel, MailNotifier, OutgoingMail};
use crate::meetings::MeetingsRegistry;
use crate::meetings::model::MeetingStatus;
use crate::store::{Store, StoreError};
use crate::time::human;

/// What a job does when it is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    /// Remind a booking's holder of the event (email, and SMS when they gave a number).
    Reminder {
        /// The booking.
        booking: BookingId,
    },
    /// Remind the holder of a meetings-agenda appointment.
    MeetingReminder {
        /// The appointment.
        meeting: MeetingId,
    },
    /// Local midnight: booking delays count in days, so every meetings agenda's window moves;
    /// tell free-slot subscribers; purge expired drafts and uploads never attached. Runs every day.
    DayChange,
    /// A timed jump of a demand's workflow is due (if the demand has not moved since).
    DemandTimeout {
        /// The demand.
        demand: DemandId,
        /// The jump item.
        item: String,
        /// The arrival in the status it was scheduled for.
        arrival: u64,
    },
    /// A timeout global action of a demand's workflow is due (if its anchor still gives this
    /// time and it has not run for it).
    DemandGlobalTimeout {
        /// The demand.
        demand: DemandId,
        /// The action.
        action: String,
    },
    /// Call a web service for a demand's workflow; retried with backoff, then recorded.
    DemandWebhook {
        /// The demand.
        demand: DemandId,
        /// The history entry that queued it.
        seq: u64,
        /// Where.
        url: String,
        /// The JSON body.
        body: String,
        /// Attempts made so far.
        attempts: u32,
    },
    /// A hold of a meetings agenda lapses: tell free-slot subscribers the slot is free again.
    HoldExpiry {
        /// The meetings agenda.
        agenda: AgendaId,
        /// The held meeting.
        meeting: MeetingId,
    },
}

impl JobKind {
    /// The record key: one job per subject, so scheduling again replaces the previous one.
    pub fn key(&self) -> String {
        match self {
            JobKind::Reminder { booking } => format!("reminder-{booking}"),
            JobKind::HoldExpiry { meeting, .. } => format!("hold-{meeting}"),
            JobKind::DayChange => "day-change".to_owned(),
            JobKind::MeetingReminder { meeting } => format!("meeting-reminder-{meeting}"),
            JobKind::DemandTimeout { demand, item, .. } => {
                format!("demand-timeout-{demand}-{item}")
            }
            JobKind::DemandWebhook { demand, seq, .. } => format!("demand-webhook-{demand}-{seq}"),
            JobKind::DemandGlobalTimeout { demand, action } => {
                format!("demand-global-{demand}-{action}")
            }
        }
    }
}

/// A job to schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledJob {
    /// What to do.
    pub kind: JobKind,
    /// When.
    pub due_at: Timestamp,
}

/// A job claimed for running.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The job.
    pub job: ScheduledJob,
    /// The lease it was claimed under; completing it checks the lease is still ours.
    pub lease_us: i64,
}

/// How long a claimed job is reserved for the process that claimed it.
pub const LEASE: SignedDuration = SignedDuration::from_secs(60);

/// The scheduler task.
pub struct Scheduler {
    store: Store,
    agendas: AgendaRegistry,
    meetings: MeetingsRegistry,
    demands: Demands,
    mail: MailNotifier,
    http: reqwest::Client,
}

impl Scheduler {
    /// A scheduler over the running services.
    pub fn new(
        store: Store,
        agendas: AgendaRegistry,
        meetings: MeetingsRegistry,
        demands: Demands,
        mail: MailNotifier,
    ) -> Self {
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap_or_default();
        Self { store, agendas, meetings, demands, mail, http }
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let midnight =
            ScheduledJob { kind: JobKind::DayChange, due_at: next_midnight(Timestamp::now()) };
        if let Err(e) = self.store.schedule_job(&midnight).await {
            tracing::warn!(error = %e, "scheduler: the daily job could not be scheduled");
        }
        loop {
            if *shutdown.borrow() {
                return;
            }
            let wait = match self.run_due().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler: store unavailable, retrying");
                    Duration::from_secs(2)
                }
            };
            tokio::select! {
                // A write scheduled a job, perhaps due before our planned wake-up.
                _ = self.store.jobs_scheduled() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Runs every due job; returns how long to sleep (at most 30 s, so that jobs scheduled by
    /// another process are seen).
    async fn run_due(&self) -> Result<Duration, StoreError> {
        loop {
            let now = Timestamp::now();
            let due = self.store.claim_due_jobs(now, 32).await?;
            if due.is_empty() {
                let next = self.store.next_job_due().await?;
                let wait = next.map_or(Duration::from_secs(30), |t| {
                    Duration::try_from(t.duration_since(now)).unwrap_or_default()
                });
                return Ok(wait.min(Duration::from_secs(30)));
            }
            for claimed in due {
                let key = claimed.job.kind.key();
                if let Err(e) = self.run_job(&claimed, now).await {
                    // The lease lapses and the job runs again.
                    tracing::warn!(job = %key, error = %e, "scheduler: job failed");
                }
            }
        }
    }

    pub(crate) async fn run_job(
        &self,
        claimed: &ClaimedJob,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let key = claimed.job.kind.key();
        match &claimed.job.kind {
            JobKind::MeetingReminder { meeting } => {
                let mails = self.meeting_reminder(*meeting, now).await?;
                let any = !mails.is_empty();
                self.store.finish_job(&key, claimed.lease_us, &mails).await?;
                if any {
                    self.mail.wake();
                }
                Ok(())
            }
            JobKind::DayChange => {
                for handle in self.meetings.running() {
                    handle.window_moved();
                }
                // Expired drafts are hidden already; this frees their space.
                let purged = self.store.purge_drafts(now).await?;
                if purged > 0 {
                    tracing::info!(purged, "expired drafts purged");
                }
                match self.demands.purge_unclaimed_uploads(now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "unattached uploads purged"),
                    Err(e) => tracing::warn!(error = %e, "uploads not purged"),
                }
                self.store.reschedule_job(&key, claimed.lease_us, next_midnight(now)).await
            }
            JobKind::DemandTimeout { demand, item, arrival } => {
                // The demand's actor writes the jump (or nothing, if it moved) durably first; a
                // crash before the job is finished runs it again, and the arrival check makes
                // that second run do nothing.
                self.demands
                    .timeout(*demand, item, *arrival)
                    .await
                    .map_err(|e| StoreError::Database(format!("demand timeout: {e}")))?;
                self.store.finish_job(&key, claimed.lease_us, &[]).await
            }
            JobKind::DemandGlobalTimeout { demand, action } => {
                // As for timed jumps: the actor writes first, and a second run finds the action
                // recorded as run for this due time and does nothing.
                self.demands
                    .global_timeout(*demand, action, claimed.job.due_at)
                    .await
                    .map_err(|e| StoreError::Database(format!("demand timeout action: {e}")))?;
                self.store.finish_job(&key, claimed.lease_us, &[]).await
            }
            JobKind::DemandWebhook { demand, url, body, attempts, .. } => {
                let attempts = attempts + 1;
                let status = self.post(url, body).await;
                let success = status.is_some_and(|s| (200..300).contains(&s));
                if !success && attempts < WEBHOOK_ATTEMPTS {
                    // 1, 2, 4, 8... minutes.
                    let mut next = claimed.job.clone();
                    if let JobKind::DemandWebhook { attempts: a, .. } = &mut next.kind {
                        *a = attempts;
                    }
                    next.due_at = now + SignedDuration::from_mins(1 << (attempts - 1).min(10));
                    tracing::info!(%demand, %url, ?status, attempts, "web service call failed, will retry");
                    return self.store.retry_job(&key, claimed.lease_us, &next).await;
                }
                self.demands
                    .webhook_done(*demand, url, status, attempts)
                    .await
                    .map_err(|e| StoreError::Database(format!("demand webhook outcome: {e}")))?;
                self.store.finish_job(&key, claimed.lease_us, &[]).await
            }
            JobKind::HoldExpiry { agenda, .. } => {
                if let Ok(handle) = self.meetings.get(*agenda).await {
                    handle.release_lapsed_holds().await;
                }
                self.store.finish_job(&key, claimed.lease_us, &[]).await
            }
            JobKind::Reminder { booking } => {
                let decided =
                    self.reminder(*booking, claimed.job.due_at, now).await.map_err(|e| {
                        // Out of reach for now: the lease lapses and the job runs again.
                        StoreError::Database(e.to_string())
                    })?;
                match decided {
                    Reminder::Send(mails) => {
                        self.store.finish_job(&key, claimed.lease_us, &mails).await?;
                        self.mail.wake();
                        Ok(())
                    }
                    Reminder::Later(at) => {
                        self.store.reschedule_job(&key, claimed.lease_us, at).await
                    }
                    Reminder::Drop => self.store.finish_job(&key, claimed.lease_us, &[]).await,
                }
            }
        }
    }

    /// Decides what a due reminder does: the booking may have been cancelled, the event moved or
    /// cancelled, the agenda's reminder setting changed.
    async fn reminder(
        &self,
        booking: BookingId,
        due_at: Timestamp,
        now: Timestamp,
    ) -> Result<Reminder, AgendaError> {
        let Some(view) = existing(self.agendas.booking(booking).await)? else {
            return Ok(Reminder::Drop);
        };
        if view.status != BookingStatus::Confirmed {
            return Ok(Reminder::Drop);
        }
        let Some(handle) = existing(self.agendas.get(view.agenda_id).await)? else {
            return Ok(Reminder::Drop);
        };
        let Some(hours) = handle.settings().events.citizen_notifications.reminder_hours else {
            return Ok(Reminder::Drop);
        };
        let Some(event) = existing(handle.event(view.event_id, false).await)? else {
            return Ok(Reminder::Drop);
        };
        if event.cancelled_at.is_some() || event.starts_at <= now {
            return Ok(Reminder::Drop);
        }
        let wanted = event.starts_at - SignedDuration::from_hours(i64::from(hours));
        // The event moved later: remind at the new time.
        if wanted > due_at && wanted > now {
            return Ok(Reminder::Later(wanted));
        }
        let text = format!(
            "Reminder: \"{}\" starts {}. Booking reference: {}",
            event.label,
            human(event.starts_at),
            view.id
        );
        let subject = format!("[Guichet] Reminder: {}", event.label);
        Ok(Reminder::Send(reminder_messages(view.account_id, &subject, &text, now)))
    }
}

impl Scheduler {
    /// The reminders of an appointment still confirmed and to come (none otherwise).
    async fn meeting_reminder(
        &self,
        meeting: MeetingId,
        now: Timestamp,
    ) -> Result<Vec<OutgoingMail>, StoreError> {
        let Some(m) = self.store.meeting(meeting).await? else { return Ok(Vec::new()) };
        let (Some(account), MeetingStatus::Confirmed) = (m.account_id, m.status) else {
            return Ok(Vec::new());
        };
        if m.starts_at <= now {
            return Ok(Vec::new());
        }
        let label = self.store.agenda(m.agenda_id).await?.map(|a| a.label).unwrap_or_default();
        let text = format!(
            "Reminder: your appointment \"{label}\" is {}. Reference: {}",
            human(m.starts_at),
            m.id
        );
        Ok(reminder_messages(account, &format!("[Guichet] Reminder: {label}"), &text, now))
    }
}

/// A reminder to one account: an email, and the same text by SMS (sent if they gave a number).
fn reminder_messages(
    account: AccountId,
    subject: &str,
    text: &str,
    now: Timestamp,
) -> Vec<OutgoingMail> {
    [Channel::Email, Channel::Sms]
        .into_iter()
        .map(|channel| OutgoingMail {
            id: MailId::new(),
            channel,
            to: Vec::new(),
            to_accounts: vec![account],
            subject: subject.to_owned(),
            body: format!("{text}\n"),
            created_at: now,
        })
        .collect()
}

/// Whatever no longer exists drops a reminder; an unavailable store retries it.
fn existing<T>(r: Result<T, AgendaError>) -> Result<Option<T>, AgendaError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(AgendaError::Unavailable(e)) => Err(AgendaError::Unavailable(e)),
        Err(_) => Ok(None),
    }
}

enum Reminder {
    Send(Vec<OutgoingMail>),
    Later(Timestamp),
    Drop,
}

/// Attempts of a web service call before it is recorded as failed.
pub const WEBHOOK_ATTEMPTS: u32 = 5;

impl Scheduler {
    /// POSTs `body` as JSON; the HTTP status, or none when unreachable.
    async fn post(&self, url: &str, body: &str) -> Option<u16> {
        let sent = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await;
        match sent {
            Ok(r) => Some(r.status().as_u16()),
            Err(e) => {
                tracing::info!(%url, error = %e, "web service unreachable");
                None
            }
        }
    }
}

/// The next local midnight (Europe/Paris) after `now`.
pub fn next_midnight(now: Timestamp) -> Timestamp {
    let tz = crate::time::paris();
    let tomorrow = now.to_zoned(tz.clone()).date().tomorrow().unwrap_or_default();
    tomorrow.to_zoned(tz).map(|z| z.timestamp()).unwrap_or(now + SignedDuration::from_hours(24))
}

/// The reminder of a new booking, when its agenda sends reminders and there is time left.
pub fn reminder_for(
    booking: BookingId,
    starts_at: Timestamp,
    reminder_hours: Option<u32>,
    now: Timestamp,
) -> Option<ScheduledJob> {
    let due_at = starts_at - SignedDuration::from_hours(i64::from(reminder_hours?));
    (due_at > now).then_some(ScheduledJob { kind: JobKind::Reminder { booking }, due_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn midnight_is_local_and_dst_correct() {
        // Winter: midnight in Paris is 23:00 UTC.
        assert_eq!(next_midnight(at("2026-12-07T15:00:00Z")), at("2026-12-07T23:00:00Z"));
        // Just after local midnight, the next one is a day later.
        assert_eq!(next_midnight(at("2026-12-07T23:00:01Z")), at("2026-12-08T23:00:00Z"));
        // Summer: 22:00 UTC, and the change-over days in between.
        assert_eq!(next_midnight(at("2026-03-28T12:00:00Z")), at("2026-03-28T23:00:00Z"));
        assert_eq!(next_midnight(at("2026-03-29T12:00:00Z")), at("2026-03-29T22:00:00Z"));
        assert_eq!(next_midnight(at("2026-10-25T12:00:00Z")), at("2026-10-25T23:00:00Z"));
    }

    #[test]
    fn reminders_are_due_before_the_event_and_not_in_the_past() {
        let now = at("2026-12-07T10:00:00Z");
        let b = BookingId::new();
        let job = reminder_for(b, at("2026-12-09T10:00:00Z"), Some(24), now).unwrap();
        assert_eq!(job.due_at, at("2026-12-08T10:00:00Z"));
        assert_eq!(job.kind.key(), format!("reminder-{b}"));
        assert!(reminder_for(b, at("2026-12-07T20:00:00Z"), Some(24), now).is_none(), "too late");
        assert!(reminder_for(b, at("2026-12-09T10:00:00Z"), None, now).is_none(), "no reminders");
    }
}
