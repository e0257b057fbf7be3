//! The scheduler's jobs: one record per subject (`reminder-<booking>`, `hold-<meeting>`), keyed
//! so that scheduling again replaces the job, claimed with a lease, finished in the transaction
//! that queues what it produced.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::records::OutboxRecord;
use super::{Store, StoreError, json, parse_id};
use crate::mail::OutgoingMail;
use crate::scheduler::{ClaimedJob, JobKind, LEASE, ScheduledJob};
use crate::time::{from_micros, to_micros};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct JobRecord {
    key: String,
    kind: String,
    subject: String,
    #[serde(default)]
    agenda: Option<String>,
    /// For demand timeouts: `<arrival>:<item>`.
    #[serde(default)]
    detail: Option<String>,
    due_us: i64,
    status: String,
    lease_us: i64,
}

/// The row that schedules a job, for a batch transaction.
pub(super) fn job_row(job: &ScheduledJob, now: Timestamp) -> Value {
    let mut detail = None;
    let (kind, subject, agenda) = match &job.kind {
        JobKind::DayChange => ("day-change", String::new(), None),
        JobKind::MeetingReminder { meeting } => ("meeting-reminder", meeting.to_string(), None),
        JobKind::Reminder { booking } => ("reminder", booking.to_string(), None),
        JobKind::HoldExpiry { agenda, meeting } => {
            ("hold", meeting.to_string(), Some(agenda.to_string()))
        }
        JobKind::DemandTimeout { demand, item, arrival } => {
            detail = Some(format!("{arrival}:{item}"));
            ("demand-timeout", demand.to_string(), None)
        }
        JobKind::DemandGlobalTimeout { demand, action } => {
            detail = Some(action.clone());
            ("demand-global-timeout", demand.to_string(), None)
        }
        JobKind::DemandWebhook { demand, seq, url, body, attempts } => {
            detail = Some(
                serde_json::json!({ "seq": seq, "url": url, "body": body, "attempts": attempts })
                    .to_string(),
            );
            ("demand-webhook", demand.to_string(), None)
        }
    };
    serde_json::json!({
        "key": job.kind.key(),
        "kind": kind,
        "subject": subject,
        "agenda": agenda,
        "detail": detail,
        "due_us": to_micros(job.due_at),
        "status": "pending",
        "lease_us": 0,
        "created_us": to_micros(now),
    })
}

/// The statement that writes `$jobs` (rows of [`job_row`]) in a transaction.
pub(super) const UPSERT_JOBS: &str =
    "FOR $j IN $jobs { UPSERT type::record('job', $j.key) CONTENT $j RETURN NONE; };\n";

impl JobRecord {
    fn into_claimed(self) -> Result<ClaimedJob, StoreError> {
        let kind = match self.kind.as_str() {
            "reminder" => JobKind::Reminder { booking: parse_id(&self.subject)? },
            "day-change" => JobKind::DayChange,
            "meeting-reminder" => JobKind::MeetingReminder { meeting: parse_id(&self.subject)? },
            "hold" => JobKind::HoldExpiry {
                agenda: parse_id(self.agenda.as_deref().unwrap_or_default())?,
                meeting: parse_id(&self.subject)?,
            },
            "demand-timeout" => {
                let detail = self.detail.unwrap_or_default();
                let (arrival, item) = detail
                    .split_once(':')
                    .ok_or_else(|| StoreError::Corrupt(format!("demand timeout {detail:?}")))?;
                JobKind::DemandTimeout {
                    demand: parse_id(&self.subject)?,
                    item: item.to_owned(),
                    arrival: parse_id(arrival)?,
                }
            }
            "demand-global-timeout" => JobKind::DemandGlobalTimeout {
                demand: parse_id(&self.subject)?,
                action: self.detail.unwrap_or_default(),
            },
            "demand-webhook" => {
                #[derive(Deserialize)]
                struct Call {
                    seq: u64,
                    url: String,
                    body: String,
                    attempts: u32,
                }
                let c: Call = serde_json::from_str(self.detail.as_deref().unwrap_or_default())
                    .map_err(|e| StoreError::Corrupt(format!("demand webhook: {e}")))?;
                JobKind::DemandWebhook {
                    demand: parse_id(&self.subject)?,
                    seq: c.seq,
                    url: c.url,
                    body: c.body,
                    attempts: c.attempts,
                }
            }
            other => return Err(StoreError::Corrupt(format!("job kind {other:?}"))),
        };
        Ok(ClaimedJob {
            job: ScheduledJob { kind, due_at: from_micros(self.due_us) },
            lease_us: self.lease_us,
        })
    }
}

impl Store {
    /// Resolves after a write scheduled jobs (possibly before this call: one is remembered).
    pub async fn jobs_scheduled(&self) {
        self.jobs_scheduled.notified().await;
    }

    /// Tells the scheduler jobs were written.
    pub(super) fn wake_scheduler(&self) {
        self.jobs_scheduled.notify_one();
    }

    /// Schedules one job on its own (replacing a pending one with the same key).
    pub async fn schedule_job(&self, job: &ScheduledJob) -> Result<(), StoreError> {
        self.write(
            &format!("BEGIN TRANSACTION; {UPSERT_JOBS} COMMIT TRANSACTION;"),
            vec![("jobs", Value::Array(vec![job_row(job, Timestamp::now())]))],
        )
        .await?;
        self.wake_scheduler();
        Ok(())
    }

    /// Claims up to `limit` jobs due at `now` (pending, or leased by a process that did not
    /// finish them in time) for one lease.
    pub async fn claim_due_jobs(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let now_us = to_micros(now);
        let keys: Vec<String> = self
            .rows(
                "SELECT VALUE key FROM job WHERE status = 'pending' AND due_us <= $now AND lease_us <= $now ORDER BY due_us LIMIT $limit",
                vec![("now", now_us.into()), ("limit", limit.into())],
            )
            .await?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let lease = now_us + LEASE.as_micros() as i64;
        let claimed = self
            .write(
                "BEGIN TRANSACTION;
                 FOR $k IN $keys {
                    UPDATE type::record('job', $k) SET lease_us = $lease
                        WHERE status = 'pending' AND due_us <= $now AND lease_us <= $now;
                 };
                 COMMIT TRANSACTION;",
                vec![("keys", json(&keys)?), ("now", now_us.into()), ("lease", lease.into())],
            )
            .await;
        match claimed {
            Ok(_) => {}
            // Another process claimed some of them first: leave these to it.
            Err(StoreError::Conflict(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
        let recs: Vec<JobRecord> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM job WHERE status = 'pending' AND lease_us = $lease AND key IN $keys",
                vec![("lease", lease.into()), ("keys", json(&keys)?)],
            )
            .await?;
        recs.into_iter().map(JobRecord::into_claimed).collect()
    }

    /// When the next pending job is due.
    pub async fn next_job_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let next: Option<i64> = self
            .row(
                "SELECT VALUE math::max([due_us, lease_us]) FROM job WHERE status = 'pending' ORDER BY due_us LIMIT 1",
                vec![],
            )
            .await?;
        Ok(next.map(from_micros))
    }

    /// Marks a job done and queues what it produced, in one transaction, only if the job is
    /// still ours (same lease) and pending: a job's messages are queued once.
    pub async fn finish_job(
        &self,
        key: &str,
        lease_us: i64,
        mails: &[OutgoingMail],
    ) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let mails: Vec<Value> =
            mails.iter().map(|m| json(&OutboxRecord::queued(m, now))).collect::<Result<_, _>>()?;
        self.write(
            "BEGIN TRANSACTION;
             LET $r = (UPDATE type::record('job', $key) SET status = 'done', done_us = $now
                WHERE status = 'pending' AND lease_us = $lease RETURN key);
             IF array::len($r) == 0 { THROW 'job ' + $key + ' is no longer ours' };
             IF array::len($mails) > 0 { INSERT INTO outbox $mails RETURN NONE; };
             COMMIT TRANSACTION;",
            vec![
                ("key", key.into()),
                ("lease", lease_us.into()),
                ("now", to_micros(now).into()),
                ("mails", Value::Array(mails)),
            ],
        )
        .await
        .map(drop)
    }

    /// Replaces a claimed job by its next attempt (same key, new details and due instant).
    pub async fn retry_job(
        &self,
        key: &str,
        lease_us: i64,
        next: &ScheduledJob,
    ) -> Result<(), StoreError> {
        self.write(
            "BEGIN TRANSACTION;
             LET $r = (SELECT VALUE key FROM type::record('job', $key) WHERE status = 'pending' AND lease_us = $lease);
             IF array::len($r) == 0 { THROW 'job ' + $key + ' is no longer ours' };
             UPSERT type::record('job', $key) CONTENT $row RETURN NONE;
             COMMIT TRANSACTION;",
            vec![
                ("key", key.into()),
                ("lease", lease_us.into()),
                ("row", job_row(next, Timestamp::now())),
            ],
        )
        .await
        .map(drop)
    }

    /// Moves a claimed job to a new due instant.
    pub async fn reschedule_job(
        &self,
        key: &str,
        lease_us: i64,
        due_at: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(
            "UPDATE type::record('job', $key) SET due_us = $due, lease_us = 0
                WHERE status = 'pending' AND lease_us = $lease RETURN NONE",
            vec![
                ("key", key.into()),
                ("lease", lease_us.into()),
                ("due", to_micros(due_at).into()),
            ],
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::run;
    use jiff::SignedDuration;

    use super::*;
    use crate::ids::{BookingId, MailId};
    use crate::mail::Channel;

    async fn schedule(store: &Store, job: &ScheduledJob) {
        store.schedule_job(job).await.unwrap();
    }

    fn mail() -> OutgoingMail {
        OutgoingMail {
            id: MailId::new(),
            channel: Channel::Email,
            to: vec!["a@b.test".into()],
            to_accounts: vec![],
            subject: "s".into(),
            body: "b".into(),
            created_at: Timestamp::now(),
        }
    }

    #[test]
    fn a_job_is_claimed_once_and_its_messages_queued_once() {
        run(async {
            let store = Store::open("mem://").await.unwrap();
            let now = Timestamp::now();
            let due = ScheduledJob {
                kind: JobKind::Reminder { booking: BookingId::new() },
                due_at: now - SignedDuration::from_secs(1),
            };
            let later = ScheduledJob {
                kind: JobKind::Reminder { booking: BookingId::new() },
                due_at: now + SignedDuration::from_secs(3600),
            };
            schedule(&store, &due).await;
            schedule(&store, &later).await;
            assert_eq!(
                store.next_job_due().await.unwrap(),
                Some(from_micros(to_micros(due.due_at)))
            );

            let claimed = store.claim_due_jobs(now, 10).await.unwrap();
            assert_eq!(claimed.len(), 1, "only the due one");
            assert_eq!(claimed[0].job.kind, due.kind);
            // Leased: a second scheduler (another process) gets nothing.
            assert!(store.claim_due_jobs(now, 10).await.unwrap().is_empty());

            let key = due.kind.key();
            store.finish_job(&key, claimed[0].lease_us, &[mail()]).await.unwrap();
            // Finishing again (a retry after an unknown outcome) is refused and queues nothing.
            assert!(store.finish_job(&key, claimed[0].lease_us, &[mail()]).await.is_err());
            assert_eq!(store.outbox(10).await.unwrap().len(), 1);
            // Even after the lease would have lapsed, a done job is not claimed again.
            let much_later = now + SignedDuration::from_secs(120);
            assert!(store.claim_due_jobs(much_later, 10).await.unwrap().is_empty());
        });
    }

    #[test]
    fn a_lapsed_lease_lets_the_job_run_again_and_the_stale_owner_cannot_finish() {
        run(async {
            let store = Store::open("mem://").await.unwrap();
            let now = Timestamp::now();
            let job = ScheduledJob {
                kind: JobKind::Reminder { booking: BookingId::new() },
                due_at: now - SignedDuration::from_secs(1),
            };
            schedule(&store, &job).await;
            let first = store.claim_due_jobs(now, 10).await.unwrap().remove(0);
            // The first claimer crashed; after its lease another process takes the job.
            let after_lease = now + LEASE + SignedDuration::from_secs(1);
            let second = store.claim_due_jobs(after_lease, 10).await.unwrap().remove(0);
            assert_ne!(first.lease_us, second.lease_us);
            let key = job.kind.key();
            assert!(store.finish_job(&key, first.lease_us, &[mail()]).await.is_err());
            store.finish_job(&key, second.lease_us, &[mail()]).await.unwrap();
            assert_eq!(store.outbox(10).await.unwrap().len(), 1, "queued exactly once");
            // Rescheduling moves a job; scheduling the same subject again replaces it.
            let moved = ScheduledJob { due_at: now + SignedDuration::from_secs(60), ..job.clone() };
            schedule(&store, &moved).await;
            assert!(store.claim_due_jobs(now, 10).await.unwrap().is_empty());
            let c = store.claim_due_jobs(now + SignedDuration::from_secs(61), 10).await.unwrap();
            assert_eq!(c.len(), 1);
        });
    }
}
