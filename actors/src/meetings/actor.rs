//! `MeetingsActor`: owns one meetings agenda, its configuration and its active meetings. Every
//! booking, hold and cancellation goes through it. Commands waiting in its queue are decided
//! together on its state and written as one transaction (one disk sync for the group); callers
//! are answered once it is durable. The store refuses a meeting on a desk cell that another
//! meeting occupies, whoever writes: on such a refusal, or any failed write, the actor reloads
//! its meetings from the store and decides the queue again.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix::prelude::*;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::oneshot;

use super::messages::{
    AddDesk, AddException, AddMeetingType, AddPeriods, CancelMeeting, GetConfig, GetHold,
    GetMeetings, GetSlots, ReleaseLapsedHolds, ReserveSlot, WindowMoved,
};
use super::model::{
    Desk, Meeting, MeetingStatus, MeetingType, MeetingsAgenda, MeetingsError, OpeningPeriod,
    SlotRequest, TimeException,
};
use crate::agenda::model::AgendaSettings;
use crate::ids::MailId;
use crate::ids::{DeskId, ExceptionId, MeetingId, MeetingTypeId, PeriodId};
use crate::live::{LiveHub, SlotsChanged};
use crate::mail::{Channel, MailNotifier, OutgoingMail};
use crate::metrics::ActorMetrics;
use crate::scheduler::{JobKind, ScheduledJob};
use crate::store::{MeetingsConfig, Store, StoreError};
use crate::time::human;

/// Attempts of one batch against write conflicts before callers get `Unavailable`.
const MAX_ATTEMPTS: u32 = 8;
/// The most commands decided and written together.
const MAX_BATCH: usize = 512;
/// Meetings over for this long no longer take part in decisions.
const KEEP_PAST: SignedDuration = SignedDuration::from_hours(24);

type Reply = oneshot::Sender<Result<Meeting, MeetingsError>>;

enum Command {
    Reserve(SlotRequest, MeetingStatus, Vec<(String, Timestamp, Timestamp)>, Reply),
    Cancel(MeetingId, Reply),
}

/// The actor of one meetings agenda.
pub(super) struct MeetingsActor {
    settings: Arc<AgendaSettings>,
    agenda: MeetingsAgenda,
    store: Store,
    live: LiveHub,
    mail: MailNotifier,
    metrics: Arc<ActorMetrics>,
    pending: Vec<Command>,
    flushing: bool,
    seq: u64,
}

impl MeetingsActor {
    pub(super) fn new(
        settings: Arc<AgendaSettings>,
        agenda: MeetingsAgenda,
        store: Store,
        live: LiveHub,
        mail: MailNotifier,
        metrics: Arc<ActorMetrics>,
    ) -> Self {
        Self {
            settings,
            agenda,
            store,
            live,
            mail,
            metrics,
            pending: Vec::new(),
            flushing: false,
            seq: 0,
        }
    }

    fn enqueue(&mut self, command: Command, ctx: &mut Context<Self>) {
        self.metrics.queued_commands.fetch_add(1, Ordering::Relaxed);
        self.pending.push(command);
        self.flush(ctx);
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.pending.is_empty() {
            return;
        }
        self.flushing = true;
        let rest = if self.pending.len() > MAX_BATCH {
            self.pending.split_off(MAX_BATCH)
        } else {
            Vec::new()
        };
        let batch = std::mem::replace(&mut self.pending, rest);
        self.decide_and_write(batch, 0, ctx);
    }

    /// Applies the batch to the live state, then writes what changed. Until the write is known
    /// to have failed, the new meetings count as taken for readers, which errs on the safe side.
    fn decide_and_write(&mut self, batch: Vec<Command>, attempt: u32, ctx: &mut Context<Self>) {
        let now = Timestamp::now();
        self.agenda.forget_past(now - KEEP_PAST, now);
        let mut changed: Vec<Meeting> = Vec::new();
        let outcomes: Vec<Result<Meeting, MeetingsError>> = batch
            .iter()
            .map(|c| match c {
                Command::Reserve(req, status, blocked, _) => self
                    .agenda
                    .reserve_with(req, *status, now, MeetingId::new, blocked)
                    .map(|(m, released)| {
                        changed.extend(released);
                        changed.push(m.clone());
                        m
                    }),
                Command::Cancel(id, _) => {
                    self.agenda.cancel(*id).inspect(|m| changed.push(m.clone()))
                }
            })
            .collect();
        if changed.is_empty() {
            self.answer(batch, outcomes);
            self.flushing = false;
            self.flush(ctx);
            return;
        }
        let (mails, jobs) = self.notices(&outcomes, now);
        let wake_mailer = !mails.is_empty();
        let store = self.store.clone();
        let resources = self.settings.resources.clone();
        let write = async move {
            let result = store.commit_meetings(&changed, &resources, &mails, &jobs, now).await;
            (result, changed)
        };
        ctx.spawn(write.into_actor(self).map(move |(result, changed), act, ctx| match result {
            Ok(()) => {
                if wake_mailer {
                    act.mail.wake();
                }
                act.publish(&changed);
                act.answer(batch, outcomes);
                act.flushing = false;
                act.flush(ctx);
            }
            Err(e) => {
                let retry = matches!(e, StoreError::Conflict(_)) && attempt + 1 < MAX_ATTEMPTS;
                if !retry {
                    tracing::error!(agenda = %act.settings.id, error = %e, "meetings batch failed");
                }
                act.reload_then(batch, attempt, retry, ctx);
            }
        }));
    }

    /// Replaces the live meetings by the store's, then decides the batch again (`retry`) or
    /// answers `Unavailable`.
    fn reload_then(
        &mut self,
        batch: Vec<Command>,
        attempt: u32,
        retry: bool,
        ctx: &mut Context<Self>,
    ) {
        let store = self.store.clone();
        let agenda_id = self.settings.id;
        let load = async move {
            let now = Timestamp::now();
            store.active_meetings(agenda_id, now - KEEP_PAST, now).await
        };
        ctx.spawn(load.into_actor(self).map(move |loaded, act, ctx| {
            match loaded {
                Ok(meetings) => act.agenda.replace_meetings(meetings),
                Err(e) => {
                    tracing::error!(agenda = %agenda_id, error = %e, "meetings reload failed")
                }
            }
            if retry {
                act.decide_and_write(batch, attempt + 1, ctx);
            } else {
                let outcomes = batch
                    .iter()
                    .map(|_| {
                        Err(MeetingsError::Unavailable(
                            "the meeting could not be stored, try again".into(),
                        ))
                    })
                    .collect();
                act.answer(batch, outcomes);
                act.flushing = false;
                act.flush(ctx);
            }
        }));
    }

    fn answer(&mut self, batch: Vec<Command>, outcomes: Vec<Result<Meeting, MeetingsError>>) {
        self.metrics.queued_commands.fetch_sub(batch.len(), Ordering::Relaxed);
        for (command, outcome) in batch.into_iter().zip(outcomes) {
            // A caller that gave up (dropped its receiver) is not an error.
            match command {
                Command::Reserve(_, _, _, tx) | Command::Cancel(_, tx) => drop(tx.send(outcome)),
            }
        }
    }

    /// The mails and reminders a decided batch calls for: a new booking is confirmed (and
    /// reminded later), a cancelled booking is told, when the agenda says so.
    fn notices(
        &self,
        outcomes: &[Result<Meeting, MeetingsError>],
        now: Timestamp,
    ) -> (Vec<OutgoingMail>, Vec<ScheduledJob>) {
        let rules = &self.settings.meetings;
        let mut mails = Vec::new();
        let mut jobs = Vec::new();
        for m in outcomes.iter().flatten() {
            let Some(account) = m.account_id else { continue };
            let what = self.agenda.types.get(&m.meeting_type_id).map_or_else(
                || self.settings.label.clone(),
                |t| format!("{} ({})", t.label, self.settings.label),
            );
            let when = human(m.starts_at);
            let (subject, body) = match m.status {
                MeetingStatus::Confirmed => {
                    if let Some(hours) = rules.reminder_hours {
                        let due_at =
                            m.starts_at - jiff::SignedDuration::from_hours(i64::from(hours));
                        if due_at > now {
                            jobs.push(ScheduledJob {
                                kind: JobKind::MeetingReminder { meeting: m.id },
                                due_at,
                            });
                        }
                    }
                    (
                        format!("[Guichet] Appointment confirmed: {what}"),
                        format!(
                            "Your appointment \"{what}\" is booked for {when}.\nReference: {}\n",
                            m.id
                        ),
                    )
                }
                MeetingStatus::Cancelled => (
                    format!("[Guichet] Appointment cancelled: {what}"),
                    format!(
                        "Your appointment \"{what}\" of {when} is cancelled.\nReference: {}\n",
                        m.id
                    ),
                ),
                MeetingStatus::Held => continue,
            };
            if rules.notify_citizens {
                mails.push(OutgoingMail {
                    id: MailId::new(),
                    channel: Channel::Email,
                    to: Vec::new(),
                    to_accounts: vec![account],
                    subject,
                    body,
                    created_at: now,
                });
            }
        }
        (mails, jobs)
    }

    /// Tells slot subscribers which span changed.
    fn publish(&mut self, changed: &[Meeting]) {
        let from = changed.iter().map(|m| m.starts_at).min();
        let to = changed.iter().map(|m| m.ends_at).max();
        if let (Some(from), Some(to)) = (from, to) {
            self.publish_span(from, to);
        }
    }

    fn publish_span(&mut self, from: Timestamp, to: Timestamp) {
        self.seq += 1;
        self.live.publish_slots(SlotsChanged {
            agenda_id: self.settings.id,
            seq: self.seq,
            from,
            to,
        });
    }

    /// Runs a configuration write while the actor handles no other message, so that two
    /// changes are never validated against the same old state; applies it once stored.
    fn configure<T, W, F>(
        &mut self,
        decided: Result<T, MeetingsError>,
        write: W,
        apply: fn(&mut MeetingsActor, &T),
    ) -> AtomicResponse<Self, Result<T, MeetingsError>>
    where
        T: Clone + 'static,
        W: FnOnce(Store, T) -> F,
        F: std::future::Future<Output = Result<(), StoreError>> + 'static,
    {
        let value = match decided {
            Ok(v) => v,
            Err(e) => return AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        };
        let fut = write(self.store.clone(), value.clone());
        let agenda_id = self.settings.id;
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(move |result, act, _| match result {
            Ok(()) => {
                apply(act, &value);
                Ok(value)
            }
            Err(e) => {
                tracing::error!(agenda = %agenda_id, error = %e, "meetings configuration not stored");
                Err(MeetingsError::Unavailable("the change could not be stored, try again".into()))
            }
        })))
    }
}

impl Actor for MeetingsActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Bookings arrive in bursts; a large mailbox lets them queue into one group commit.
        ctx.set_mailbox_capacity(4096);
        self.metrics.live_actors.fetch_add(1, Ordering::Relaxed);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.metrics.live_actors.fetch_sub(1, Ordering::Relaxed);
    }
}

fn reply_when_done(
    rx: oneshot::Receiver<Result<Meeting, MeetingsError>>,
) -> ResponseFuture<Result<Meeting, MeetingsError>> {
    Box::pin(async move {
        rx.await.unwrap_or_else(|_| Err(MeetingsError::Unavailable("agenda stopped".into())))
    })
}

impl Handler<ReserveSlot> for MeetingsActor {
    type Result = ResponseFuture<Result<Meeting, MeetingsError>>;

    fn handle(&mut self, msg: ReserveSlot, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Command::Reserve(msg.request, msg.status, msg.blocked, tx), ctx);
        reply_when_done(rx)
    }
}

impl Handler<CancelMeeting> for MeetingsActor {
    type Result = ResponseFuture<Result<Meeting, MeetingsError>>;

    fn handle(&mut self, msg: CancelMeeting, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Command::Cancel(msg.0, tx), ctx);
        reply_when_done(rx)
    }
}

impl Handler<AddMeetingType> for MeetingsActor {
    type Result = AtomicResponse<Self, Result<MeetingType, MeetingsError>>;

    fn handle(&mut self, msg: AddMeetingType, _: &mut Context<Self>) -> Self::Result {
        let agenda = self.settings.id;
        let decided = self.agenda.new_meeting_type(msg.0, MeetingTypeId::new());
        self.configure(
            decided,
            move |store, t| async move { store.create_meeting_type(agenda, &t, Timestamp::now()).await },
            |act, t| {
                act.agenda.types.insert(t.id, t.clone());
                act.publish_span(Timestamp::MIN, Timestamp::MAX);
            },
        )
    }
}

impl Handler<AddDesk> for MeetingsActor {
    type Result = AtomicResponse<Self, Result<Desk, MeetingsError>>;

    fn handle(&mut self, msg: AddDesk, _: &mut Context<Self>) -> Self::Result {
        let agenda = self.settings.id;
        let decided = self.agenda.new_desk(&msg.0, DeskId::new());
        self.configure(
            decided,
            move |store, d| async move { store.create_desk(agenda, &d, Timestamp::now()).await },
            |act, d| {
                act.agenda.desks.insert(d.id, d.clone());
            },
        )
    }
}

impl Handler<AddPeriods> for MeetingsActor {
    type Result = AtomicResponse<Self, Result<Vec<OpeningPeriod>, MeetingsError>>;

    fn handle(&mut self, msg: AddPeriods, _: &mut Context<Self>) -> Self::Result {
        let agenda = self.settings.id;
        let today = Timestamp::now().to_zoned(self.agenda.tz.clone()).date();
        let decided = self.agenda.new_periods(msg.0, today, PeriodId::new);
        self.configure(
            decided,
            move |store, p| async move { store.create_periods(agenda, &p, Timestamp::now()).await },
            |act, p| {
                act.agenda.periods.extend(p.iter().cloned());
                act.publish_span(Timestamp::MIN, Timestamp::MAX);
            },
        )
    }
}

impl Handler<AddException> for MeetingsActor {
    type Result = AtomicResponse<Self, Result<TimeException, MeetingsError>>;

    fn handle(&mut self, msg: AddException, _: &mut Context<Self>) -> Self::Result {
        let agenda = self.settings.id;
        let decided = self.agenda.new_exception(msg.0, Timestamp::now(), ExceptionId::new());
        self.configure(
            decided,
            move |store, e| async move { store.create_exception(agenda, &e, Timestamp::now()).await },
            |act, e| {
                act.agenda.exceptions.push(e.clone());
                act.publish_span(e.starts_at, e.ends_at);
            },
        )
    }
}

impl Handler<GetSlots> for MeetingsActor {
    type Result = Result<Vec<super::model::Slot>, MeetingsError>;

    fn handle(&mut self, msg: GetSlots, _: &mut Context<Self>) -> Self::Result {
        let now = Timestamp::now();
        let slots = self.agenda.free_slots(
            msg.meeting_type,
            msg.from,
            msg.to,
            now,
            msg.lock_code.as_deref(),
            msg.ignore_delays,
        )?;
        if msg.blocked.is_empty() {
            return Ok(slots);
        }
        // The caller's own hold does not block its slot for them.
        let mine: Vec<String> = self
            .agenda
            .meetings()
            .into_iter()
            .filter(|m| m.status == MeetingStatus::Held && m.occupies(now))
            .filter(|m| msg.lock_code.is_some() && m.lock_code == msg.lock_code)
            .map(|m| crate::store::meeting_owner(m.id))
            .collect();
        Ok(slots
            .into_iter()
            .filter(|s| {
                !msg.blocked.iter().any(|(owner, from, to)| {
                    *from < s.ends_at && *to > s.starts_at && !mine.contains(owner)
                })
            })
            .collect())
    }
}

impl Handler<WindowMoved> for MeetingsActor {
    type Result = ();

    fn handle(&mut self, _: WindowMoved, _: &mut Context<Self>) {
        // Every day the delays allow may have changed: subscribers re-read what they show.
        let now = Timestamp::now();
        self.publish_span(now - jiff::SignedDuration::from_hours(24), Timestamp::MAX);
    }
}

impl Handler<ReleaseLapsedHolds> for MeetingsActor {
    type Result = ();

    fn handle(&mut self, _: ReleaseLapsedHolds, _: &mut Context<Self>) {
        let now = Timestamp::now();
        let lapsed: Vec<Meeting> = self
            .agenda
            .meetings()
            .into_iter()
            .filter(|m| m.status == MeetingStatus::Held && !m.occupies(now))
            .cloned()
            .collect();
        if lapsed.is_empty() {
            return;
        }
        for m in &lapsed {
            self.agenda.remove_meeting(m.id);
        }
        self.publish(&lapsed);
    }
}

impl Handler<GetHold> for MeetingsActor {
    type Result = bool;

    fn handle(&mut self, msg: GetHold, _: &mut Context<Self>) -> Self::Result {
        let now = Timestamp::now();
        self.agenda.meetings().into_iter().any(|m| {
            m.status == MeetingStatus::Held
                && m.occupies(now)
                && m.starts_at == msg.starts_at
                && m.lock_code.as_deref() == Some(msg.lock_code.as_str())
        })
    }
}

impl Handler<GetConfig> for MeetingsActor {
    type Result = MessageResult<GetConfig>;

    fn handle(&mut self, _: GetConfig, _: &mut Context<Self>) -> Self::Result {
        MessageResult(MeetingsConfig {
            types: self.agenda.types.values().cloned().collect(),
            desks: self.agenda.desks.values().cloned().collect(),
            periods: self.agenda.periods.clone(),
            exceptions: self.agenda.exceptions.clone(),
        })
    }
}

impl Handler<GetMeetings> for MeetingsActor {
    type Result = MessageResult<GetMeetings>;

    fn handle(&mut self, msg: GetMeetings, _: &mut Context<Self>) -> Self::Result {
        let now = Timestamp::now();
        let tz = self.agenda.tz.clone();
        let meetings = self
            .agenda
            .meetings()
            .into_iter()
            .filter(|m| m.occupies(now))
            .filter(|m| {
                let day = m.starts_at.to_zoned(tz.clone()).date();
                day >= msg.from && day <= msg.to
            })
            .cloned()
            .collect();
        MessageResult(meetings)
    }
}
