//! `AgendaActor`: owns one agenda, its events and their bookings. Every booking decision goes
//! through it. Commands waiting in its queue are decided together and written as one transaction
//! (group commit: one disk sync for the whole group), and each caller is answered only once that
//! transaction is durable. The store refuses any write based on a stale event version, so a
//! second writer (another process, or another agenda coordinating a multi-agenda booking) can
//! never make it overbook: the actor reloads and decides again.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix::prelude::*;
use jiff::Timestamp;
use tokio::sync::oneshot;

use super::handle::{EventView, Peers};
use super::messages::{
    AddEvent, AddRecurrence, AdoptEvents, Apply, Change, Changed, GetEvent, GetEvents,
};
use super::model::{AgendaError, AgendaSettings, Effects, EventState, Ledger, Working};
use crate::ids::{AgendaId, BookingId, EventId, RecurrenceId};
use crate::live::{BookingChanged, LiveHub};
use crate::mail::MailNotifier;
use crate::metrics::ActorMetrics;
use crate::store::{Store, StoreError};

/// Attempts of one batch against write conflicts before callers get `Unavailable`.
const MAX_ATTEMPTS: u32 = 8;
/// The most commands decided and written together.
const MAX_BATCH: usize = 1024;

type Outcome = Result<Changed, AgendaError>;

struct Command {
    change: Change,
    reply: oneshot::Sender<Outcome>,
}

impl Command {
    /// Events the change names directly (bookings are found through the ledger's index).
    fn event_ids(&self) -> &[EventId] {
        match &self.change {
            Change::Book(r) => &r.event_ids,
            Change::Promote(e) | Change::CancelEvent(e) | Change::UpdateEvent(e, _) => {
                std::slice::from_ref(e)
            }
            Change::MarkChecked(e, _) => std::slice::from_ref(e),
            Change::Cancel { .. } | Change::MarkPresence(..) => &[],
        }
    }
}

/// Applies one change to the batch being decided.
fn decide(working: &mut Working<'_>, change: &Change, now: Timestamp) -> Outcome {
    match change {
        Change::Book(req) => working.book(req, now, BookingId::new).map(Changed::Bookings),
        Change::Cancel { booking, by_agent } => {
            working.cancel(*booking, *by_agent, now).map(|(c, p)| Changed::Cancelled(c, p))
        }
        Change::Promote(id) => working.promote_first(*id, now).map(Changed::Booking),
        Change::CancelEvent(id) => working.cancel_event(*id, now).map(Changed::Bookings),
        Change::UpdateEvent(id, patch) => {
            working.update_event(*id, patch.clone(), now).map(Changed::Bookings)
        }
        Change::MarkPresence(id, presence) => {
            working.mark_presence(*id, presence.clone(), now).map(Changed::Booking)
        }
        Change::MarkChecked(id, checked) => {
            working.mark_checked(*id, *checked, now).map(|()| Changed::Done)
        }
    }
}

/// The actor of one agenda.
pub(super) struct AgendaActor {
    agenda_id: AgendaId,
    ledger: Ledger,
    store: Store,
    live: LiveHub,
    mail: MailNotifier,
    peers: Peers,
    metrics: Arc<ActorMetrics>,
    pending: Vec<Command>,
    flushing: bool,
}

impl AgendaActor {
    pub(super) fn new(
        settings: AgendaSettings,
        events: Vec<EventState>,
        store: Store,
        live: LiveHub,
        mail: MailNotifier,
        peers: Peers,
        metrics: Arc<ActorMetrics>,
    ) -> Self {
        let agenda_id = settings.id;
        let mut ledger = Ledger::default();
        ledger.agendas.insert(agenda_id, settings);
        for e in events {
            ledger.put_event(e);
        }
        Self {
            agenda_id,
            ledger,
            store,
            live,
            mail,
            peers,
            metrics,
            pending: Vec::new(),
            flushing: false,
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
        let foreign: BTreeSet<EventId> = batch
            .iter()
            .flat_map(|c| c.event_ids().iter().copied())
            .filter(|id| !self.ledger.events.contains_key(id))
            .collect();
        if foreign.is_empty() {
            self.decide_and_write(batch, 0, ctx);
        } else {
            self.load_then_decide(batch, foreign.into_iter().collect(), 0, ctx);
        }
    }

    /// Loads events this actor does not own (a multi-agenda booking it coordinates, or events
    /// whose cached state turned out stale) with their agendas' settings, then decides.
    fn load_then_decide(
        &mut self,
        batch: Vec<Command>,
        ids: Vec<EventId>,
        attempt: u32,
        ctx: &mut Context<Self>,
    ) {
        let store = self.store.clone();
        let known_agendas: BTreeSet<AgendaId> = self.ledger.agendas.keys().copied().collect();
        let load = async move {
            let events = store.events(&ids).await?;
            let mut agendas = Vec::new();
            let missing: BTreeSet<AgendaId> =
                events.iter().map(|e| e.agenda_id).filter(|a| !known_agendas.contains(a)).collect();
            for a in missing {
                if let Some(settings) = store.agenda(a).await? {
                    agendas.push(settings);
                }
            }
            Ok::<_, StoreError>((agendas, events))
        };
        ctx.spawn(load.into_actor(self).map(move |result, act, ctx| match result {
            Ok((agendas, events)) => {
                for a in agendas {
                    act.ledger.agendas.insert(a.id, a);
                }
                for e in events {
                    act.ledger.put_event(e);
                }
                act.decide_and_write(batch, attempt, ctx);
            }
            Err(e) => act.fail(batch, &e, ctx),
        }));
    }

    fn decide_and_write(&mut self, batch: Vec<Command>, attempt: u32, ctx: &mut Context<Self>) {
        let now = Timestamp::now();
        let mut working = self.ledger.working();
        let outcomes: Vec<Outcome> =
            batch.iter().map(|c| decide(&mut working, &c.change, now)).collect();
        let (changed, effects) = working.finish();
        if effects.is_empty() {
            self.finish(batch, outcomes, changed, effects, ctx);
            return;
        }
        let store = self.store.clone();
        let commands = batch.len();
        let write = async move {
            let started = std::time::Instant::now();
            let result = store.commit_agenda_batch(&changed, &effects, now).await;
            tracing::debug!(
                commands,
                bookings = effects.created.len(),
                elapsed_us = started.elapsed().as_micros() as u64,
                "agenda batch written"
            );
            (result, changed, effects)
        };
        ctx.spawn(write.into_actor(self).map(move |(result, changed, effects), act, ctx| match result {
            Ok(()) => act.finish(batch, outcomes, changed, effects, ctx),
            Err(StoreError::Conflict(reason)) if attempt + 1 < MAX_ATTEMPTS => {
                tracing::debug!(agenda = %act.agenda_id, attempt, %reason, "stale events, reloading");
                let ids = effects.touched.keys().copied().collect();
                act.load_then_decide(batch, ids, attempt + 1, ctx);
            }
            Err(e) => {
                let ids: Vec<EventId> = effects.touched.keys().copied().collect();
                act.fail(batch, &e, ctx);
                // The write may or may not have happened: take the store's word for it.
                act.reload(ids, ctx);
            }
        }));
    }

    /// Makes a durable batch current, answers its callers, publishes, and starts the next batch.
    fn finish(
        &mut self,
        batch: Vec<Command>,
        outcomes: Vec<Outcome>,
        changed: Vec<EventState>,
        effects: Effects,
        ctx: &mut Context<Self>,
    ) {
        let mut foreign: HashMap<AgendaId, Vec<EventState>> = HashMap::new();
        let mut seqs = HashMap::new();
        for event in changed {
            self.live.publish_fill_level(event.fill_level());
            seqs.insert(event.id, event.version);
            if event.agenda_id == self.agenda_id {
                self.ledger.put_event(event);
            } else {
                foreign.entry(event.agenda_id).or_default().push(event);
            }
        }
        let booking_views =
            effects.created.iter().map(|c| &c.view).chain(effects.changed.iter().map(|c| &c.view));
        for view in booking_views {
            let seq = seqs.get(&view.event_id).copied().unwrap_or_default();
            self.live.publish_booking(BookingChanged { booking: view.clone(), seq });
        }
        if !effects.mails.is_empty() {
            self.mail.wake();
        }
        // Owners of foreign events hear of them before any caller does.
        for (agenda, events) in foreign {
            if let Some(peer) = self.peers.get(agenda) {
                peer.do_send(AdoptEvents(events));
            }
        }
        self.answer(batch, outcomes);
        self.forget_foreign_events();
        self.flushing = false;
        self.flush(ctx);
    }

    fn answer(&mut self, batch: Vec<Command>, outcomes: Vec<Outcome>) {
        self.metrics.queued_commands.fetch_sub(batch.len(), Ordering::Relaxed);
        for (command, outcome) in batch.into_iter().zip(outcomes) {
            // A caller that gave up (dropped its receiver) is not an error.
            drop(command.reply.send(outcome));
        }
    }

    fn fail(&mut self, batch: Vec<Command>, error: &StoreError, ctx: &mut Context<Self>) {
        tracing::error!(agenda = %self.agenda_id, %error, "agenda batch failed");
        let outcomes = batch
            .iter()
            .map(|_| {
                Err(AgendaError::Unavailable("the change could not be stored, try again".into()))
            })
            .collect();
        self.answer(batch, outcomes);
        self.forget_foreign_events();
        self.flushing = false;
        self.flush(ctx);
    }

    fn forget_foreign_events(&mut self) {
        let foreign: Vec<EventId> = self
            .ledger
            .events
            .values()
            .filter(|e| e.agenda_id != self.agenda_id)
            .map(|e| e.id)
            .collect();
        for id in foreign {
            self.ledger.drop_event(id);
        }
    }

    /// Replaces own cached events by the store's copies (after a write whose outcome is unknown).
    fn reload(&mut self, ids: Vec<EventId>, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let load = async move { store.events(&ids).await };
        ctx.spawn(load.into_actor(self).map(move |result, act, _| match result {
            Ok(events) => {
                for e in events {
                    if e.agenda_id == act.agenda_id {
                        act.live.publish_fill_level(e.fill_level());
                        act.ledger.put_event(e);
                    }
                }
            }
            Err(e) => tracing::error!(agenda = %act.agenda_id, error = %e, "reload failed"),
        }));
    }

    fn view(&self, id: EventId, with_bookings: bool) -> Result<EventView, AgendaError> {
        let event = self.ledger.events.get(&id).ok_or(AgendaError::EventNotFound(id))?;
        Ok(EventView::of(event, with_bookings))
    }
}

/// Runs a write again when it lost a write-write conflict (another transaction reserved one of
/// the same resources at the same moment); the next attempt sees that transaction's outcome.
async fn retry_conflicts<F, Fut>(write: F) -> Result<(), StoreError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    let mut attempt = 0;
    loop {
        match write().await {
            Err(StoreError::Conflict(_)) if attempt + 1 < MAX_ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

/// The database's refusal, as told to the caller: `resource busy <id> by event-<id>`.
fn refused(reason: &str) -> AgendaError {
    if reason.contains("unknown resource") {
        return AgendaError::ResourceNotFound;
    }
    AgendaError::ResourceBusy(reason.find("resource busy").map_or_else(
        || "a resource is reserved at that time".to_owned(),
        |i| reason[i..].trim_end_matches(['\'', '"']).to_owned(),
    ))
}

impl Actor for AgendaActor {
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

impl Handler<Apply> for AgendaActor {
    type Result = ResponseFuture<Outcome>;

    fn handle(&mut self, msg: Apply, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, rx) = oneshot::channel();
        self.enqueue(Command { change: msg.0, reply }, ctx);
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| Err(AgendaError::Unavailable("agenda stopped".into())))
        })
    }
}

impl Handler<AddRecurrence> for AgendaActor {
    type Result =
        ResponseActFuture<Self, Result<(super::recurrence::Recurrence, usize), AgendaError>>;

    fn handle(&mut self, msg: AddRecurrence, _: &mut Context<Self>) -> Self::Result {
        let now = Timestamp::now();
        let generated =
            msg.0.generate(RecurrenceId::new(), self.agenda_id, &crate::time::paris(), now);
        let (rule, events) = match generated {
            Ok(g) => g,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let store = self.store.clone();
        let write = async move {
            retry_conflicts(|| store.create_recurrence(&rule, &events, now))
                .await
                .map(|()| (rule, events))
        };
        Box::pin(write.into_actor(self).map(|result, act, _| match result {
            Ok((rule, events)) => {
                let n = events.len();
                for e in events {
                    act.ledger.put_event(e);
                }
                Ok((rule, n))
            }
            Err(StoreError::Refused(reason)) => Err(refused(&reason)),
            Err(e) => {
                tracing::error!(agenda = %act.agenda_id, error = %e, "recurrence not stored");
                Err(AgendaError::Unavailable(
                    "the recurrence could not be stored, try again".into(),
                ))
            }
        }))
    }
}

impl Handler<AddEvent> for AgendaActor {
    type Result = ResponseActFuture<Self, Result<EventView, AgendaError>>;

    fn handle(&mut self, msg: AddEvent, _: &mut Context<Self>) -> Self::Result {
        let event = match msg.0.validate(EventId::new(), self.agenda_id) {
            Ok(e) => e,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let store = self.store.clone();
        let write = async move {
            let now = Timestamp::now();
            retry_conflicts(|| store.create_event(&event, now)).await.map(|()| event)
        };
        Box::pin(write.into_actor(self).map(|result, act, _| match result {
            Ok(event) => {
                let view = EventView::of(&event, false);
                act.ledger.put_event(event);
                Ok(view)
            }
            Err(StoreError::Refused(reason)) => Err(refused(&reason)),
            Err(e) => {
                tracing::error!(agenda = %act.agenda_id, error = %e, "event not stored");
                Err(AgendaError::Unavailable("the event could not be stored, try again".into()))
            }
        }))
    }
}

impl Handler<GetEvent> for AgendaActor {
    type Result = Result<EventView, AgendaError>;

    fn handle(&mut self, msg: GetEvent, _: &mut Context<Self>) -> Self::Result {
        self.view(msg.event_id, msg.with_bookings)
    }
}

impl Handler<GetEvents> for AgendaActor {
    type Result = MessageResult<GetEvents>;

    fn handle(&mut self, _: GetEvents, _: &mut Context<Self>) -> Self::Result {
        let mut events: Vec<EventView> = self
            .ledger
            .events
            .values()
            .filter(|e| e.agenda_id == self.agenda_id)
            .map(|e| EventView::of(e, false))
            .collect();
        events.sort_by_key(|e| (e.starts_at, e.id));
        MessageResult(events)
    }
}

impl Handler<AdoptEvents> for AgendaActor {
    type Result = ();

    fn handle(&mut self, msg: AdoptEvents, _: &mut Context<Self>) {
        for event in msg.0 {
            let newer =
                self.ledger.events.get(&event.id).is_none_or(|cur| event.version > cur.version);
            if event.agenda_id == self.agenda_id && newer {
                self.ledger.put_event(event);
            }
        }
    }
}
