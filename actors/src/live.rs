//! Live updates: one broadcast channel per event (fill levels) and per agenda (bookings, and
//! free-slot changes of meetings agendas).
//!
//! Actors publish here after their write is durable, with the event's version as sequence
//! number; subscribers start from a snapshot and drop anything not newer than what they have.
//! Channels are created on first subscription and dropped with their last subscriber.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::agenda::model::{BookingView, FillLevel};
use crate::ids::{AgendaId, DemandId, EventId};

/// The free slots of a meetings agenda changed between two instants (a booking, a hold, a
/// cancellation, a new period or exception): subscribers re-read the slots they show there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotsChanged {
    /// The agenda.
    pub agenda_id: AgendaId,
    /// Grows with every change of the agenda.
    pub seq: u64,
    /// Start of the changed span.
    pub from: jiff::Timestamp,
    /// End of the changed span.
    pub to: jiff::Timestamp,
}

/// A demand changed: its state after the change and the history entries the change added.
#[derive(Debug, Clone)]
pub struct DemandChanged {
    /// The demand after the change (its `version` is the sequence number).
    pub demand: Arc<crate::demands::model::Demand>,
    /// Entries added.
    pub history: Arc<Vec<crate::demands::model::HistoryEntry>>,
}

/// How many updates a slow subscriber may fall behind before it must take a fresh snapshot.
const CHANNEL_CAPACITY: usize = 256;

/// A change of a booking, as pushed to the agents watching an agenda.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingChanged {
    /// The booking after the change.
    pub booking: BookingView,
    /// The event's version after the change.
    pub seq: u64,
}

#[derive(Debug)]
struct Topics<K, V> {
    channels: Mutex<HashMap<K, broadcast::Sender<V>>>,
}

impl<K: Eq + Hash + Copy, V: Clone> Topics<K, V> {
    fn new() -> Self {
        Self { channels: Mutex::new(HashMap::new()) }
    }

    fn subscribe(&self, key: K) -> broadcast::Receiver<V> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.entry(key).or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0).subscribe()
    }

    fn publish(&self, key: K, value: V) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = channels.get(&key)
            && sender.send(value).is_err()
        {
            // No receiver left: forget the channel.
            channels.remove(&key);
        }
    }
}

/// The live-update hub shared by actors (publishers) and the API (subscribers).
#[derive(Debug, Clone)]
pub struct LiveHub {
    fill_levels: Arc<Topics<EventId, FillLevel>>,
    bookings: Arc<Topics<AgendaId, BookingChanged>>,
    slots: Arc<Topics<AgendaId, SlotsChanged>>,
    demands: Arc<Topics<DemandId, DemandChanged>>,
}

impl Default for LiveHub {
    fn default() -> Self {
        Self {
            fill_levels: Arc::new(Topics::new()),
            bookings: Arc::new(Topics::new()),
            slots: Arc::new(Topics::new()),
            demands: Arc::new(Topics::new()),
        }
    }
}

impl LiveHub {
    /// Receives the fill levels of an event from now on.
    pub fn subscribe_fill_level(&self, event: EventId) -> broadcast::Receiver<FillLevel> {
        self.fill_levels.subscribe(event)
    }

    /// Receives the booking changes of an agenda from now on.
    pub fn subscribe_bookings(&self, agenda: AgendaId) -> broadcast::Receiver<BookingChanged> {
        self.bookings.subscribe(agenda)
    }

    /// Publishes a fill level (called by agenda actors after a durable write).
    pub fn publish_fill_level(&self, level: FillLevel) {
        self.fill_levels.publish(level.event_id, level);
    }

    /// Publishes a booking change (called by agenda actors after a durable write).
    pub fn publish_booking(&self, change: BookingChanged) {
        self.bookings.publish(change.booking.agenda_id, change);
    }

    /// Receives the slot changes of a meetings agenda from now on.
    pub fn subscribe_slots(&self, agenda: AgendaId) -> broadcast::Receiver<SlotsChanged> {
        self.slots.subscribe(agenda)
    }

    /// Publishes a slot change (called by meetings actors after a durable write).
    pub fn publish_slots(&self, change: SlotsChanged) {
        self.slots.publish(change.agenda_id, change);
    }

    /// Receives the changes of a demand from now on.
    pub fn subscribe_demand(&self, demand: DemandId) -> broadcast::Receiver<DemandChanged> {
        self.demands.subscribe(demand)
    }

    /// Publishes a demand change (called by demand actors after a durable write).
    pub fn publish_demand(&self, change: DemandChanged) {
        self.demands.publish(change.demand.id, change);
    }
}
